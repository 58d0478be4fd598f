"""Stage 3: conversion and lifetime-value models, tuning, evaluation and registration."""
