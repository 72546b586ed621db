"""The lecture's studies: one module per claim, each a sweep or a measurement and its verdict."""
