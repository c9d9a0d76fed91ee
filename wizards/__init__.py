from . import custody_share_dialog
from . import custody_initialise_wizard
from . import custody_unseal_wizard
from . import custody_rekey_wizard
from . import partner_merge
