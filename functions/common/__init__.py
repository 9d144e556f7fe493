"""Plain-Python business logic shared by the Lambdas: testable without AWS, clients injected."""
