"""Stage 4: the scoring and routing service, routing policy and store, batch rescoring."""
