from . import jwks
from . import seal_status
