"""ermsolve: train small ReLU networks to proven global optimality with exact rational certificates."""

__version__ = "0.1.0"
