from . import jwks
from . import exits
