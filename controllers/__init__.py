from . import jwks
from . import exits
from . import seal_status
from . import metrics
