"""calcinosis: find, measure, map and follow soft-tissue calcification on medical images."""

__version__ = "0.1.0"

from calcinosis.errors import CalcinosisError, InputError
from calcinosis.volume import Volume

__all__ = ["CalcinosisError", "InputError", "Volume", "__version__"]
