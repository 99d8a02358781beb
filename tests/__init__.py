"""The test suite; tests/support/ holds the helpers the tests, bench/ and reliability/ share."""
