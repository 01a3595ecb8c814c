"""Loss terms: pure functions of tensors that return named terms."""
