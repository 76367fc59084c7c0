"""Coverage-guided fuzzing of zmtp's protocol core; see ``python -m fuzz --help``."""
