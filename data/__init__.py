"""Stage 1: CRM history in. Canonical tables, importers, public-set adapters, synthetic history."""
