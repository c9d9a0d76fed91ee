from . import jwks
