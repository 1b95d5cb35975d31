"""Alert rules (the seed's AlertRule): PromQL conditions per environment, evaluated by beat against the
environment's metric provider, firing and resolving with notifications through pmrelease.delivery."""
