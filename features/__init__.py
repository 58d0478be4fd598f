"""Stage 2: point-in-time lead and customer-lifetime-value features."""
