"""Model towers (text, social GNN), the fused head and their training."""
