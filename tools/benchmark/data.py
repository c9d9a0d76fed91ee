"""Registrant values of the benchmark: realistic, and distinct for every registrant."""

FIRST_NAMES = (
    "Amina", "Brian", "Chebet", "David", "Esther", "Faith", "George", "Halima", "Ibrahim", "Joyce",
    "Kevin", "Lilian", "Moses", "Njeri", "Otieno", "Purity", "Rehema", "Samuel", "Teresa", "Umar",
    "Violet", "Wanjiru", "Yusuf", "Zawadi", "Akinyi",
)  # fmt: skip
LAST_NAMES = (
    "Achieng", "Barasa", "Chege", "Gitau", "Hassan", "Kamau", "Kariuki", "Kiprono", "Macharia",
    "Mutua", "Mwangi", "Njoroge", "Odhiambo", "Omondi", "Onyango", "Wafula", "Waweru", "Jeptoo",
)  # fmt: skip
STREETS = (
    "Moi Avenue", "Kenyatta Avenue", "Ngong Road", "Jogoo Road", "Oginga Odinga Street",
    "Haile Selassie Avenue", "Thika Road", "Lang'ata Road", "Kimathi Street", "Tom Mboya Street",
)  # fmt: skip
CITIES = (
    ("Nairobi", "00100"), ("Mombasa", "80100"), ("Kisumu", "40100"), ("Nakuru", "20100"),
    ("Eldoret", "30100"), ("Thika", "01000"), ("Machakos", "90100"), ("Nyeri", "10100"),
    ("Garissa", "70100"), ("Kakamega", "50100"),
)  # fmt: skip


def _phone(prefix, number, multiplier):
    digits = (number * multiplier + 12345) % 10**8  # a bijection on 8 digits: distinct numbers
    return f"+254 7{prefix}{digits // 10**6 % 10:01d} {digits // 1000 % 1000:03d} {digits % 1000:03d}"


def registrant_values(number):
    """Realistic values of registrant ``number``: names, e-mails and phones differ for each."""
    first = FIRST_NAMES[number % len(FIRST_NAMES)]
    middle = FIRST_NAMES[(number // len(FIRST_NAMES)) % len(FIRST_NAMES)]
    last = LAST_NAMES[(number // len(FIRST_NAMES) ** 2) % len(LAST_NAMES)]
    city, postcode = CITIES[(number * 7) % len(CITIES)]
    return {
        "name": f"{first} {middle} {last}",
        "email": f"{first}.{last}.{number}@example.org".lower().replace("'", ""),
        "phone": _phone(2, number, 7919),
        "mobile": _phone(1, number, 104729),
        "street": f"{number % 997 + 1} {STREETS[number % len(STREETS)]}",
        "street2": f"Apartment {number % 40 + 1}, Block {'ABCDEFGH'[number % 8]}",
        "city": city,
        "zip": postcode,
    }


def values_of_run(run_index, records, offset=0):
    """Values of ``records`` registrants of run ``run_index`` (runs never share a value)."""
    base = 1 + run_index * 100_000 + offset
    return [dict(registrant_values(number), is_registrant=True) for number in range(base, base + records)]
