"""The seed's default testing gates (no Django import); ``seed_demo`` creates them."""

SEED_TESTING_GATES = [
    # name, environment, tests, required, timeout (minutes), on_failure
    ("Unit Tests", "development", ["unit-tests", "component-tests"], True, 10, "block"),
    ("Integration Tests", "staging", ["api-tests", "database-tests"], True, 20, "block"),
    ("E2E Tests", "staging", ["user-journey-tests", "critical-path-tests"], True, 30, "warn"),
    ("Performance Tests", "staging", ["load-tests", "stress-tests"], False, 60, "warn"),
    ("Security Tests", "staging", ["sast", "dast", "dependency-scan"], True, 15, "block"),
]
