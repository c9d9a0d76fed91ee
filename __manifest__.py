# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
{
    "name": "G2P Encryption",
    "summary": "Encrypt registrant data and sign vouchers with local keys or MOSIP KeyManager",
    "version": "17.0.2.0.0",
    "category": "G2P",
    "website": "https://github.com/OpenG2P/openg2p-registry",
    "author": "OpenG2P",
    "license": "LGPL-3",
    "depends": ["base", "mail", "web"],
    "external_dependencies": {
        "python": ["cryptography", "jwcrypto", "nacl", "requests", "shamir_mnemonic"]
    },
    "data": [
        "security/res_groups.xml",
        "security/ir.model.access.csv",
        "data/encryption_provider_data.xml",
        "data/encryption_job_data.xml",
        "data/encrypted_field_data.xml",
        "views/encryption_provider_views.xml",
        "views/encryption_provider_keymanager_views.xml",
        "views/encryption_provider_pkcs11_views.xml",
        "views/encryption_key_views.xml",
        "views/decryption_log_views.xml",
        "views/encrypted_field_views.xml",
        "views/res_config_settings_views.xml",
        "views/res_partner_views.xml",
        "views/menus.xml",
        "data/ir_cron_data.xml",
        "wizards/custody_wizard_views.xml",
        "views/key_custody_views.xml",
        "views/custody_templates.xml",
    ],
    "demo": [
        "demo/res_partner_demo.xml",
        "demo/res_users_demo.xml",
    ],
    "assets": {
        "web.assets_backend": [
            "g2p_encryption/static/src/**/*",
        ],
        "web.assets_tests": [
            "g2p_encryption/static/tests/tours/*.js",
        ],
    },
    "installable": True,
}
