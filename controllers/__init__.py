from . import jwks
from . import exits
from . import metrics
