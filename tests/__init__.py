from . import test_provider_local
from . import test_key_security
from . import test_signing
from . import test_jwks_endpoint
from . import test_registry_write
from . import test_registry_read
from . import test_registry_search
