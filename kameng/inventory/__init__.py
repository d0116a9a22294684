"""Card-key stock: encrypted secrets, import, atomic reservation, rotation."""
