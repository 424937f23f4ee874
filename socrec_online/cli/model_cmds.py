"""Model commands (train, evaluate, bench quality): registered on the shared apps."""
