"""Card numbers and credentials that must never leave hotpath unmasked, as senders put them in records."""

PAN = "4111111111111111"  # Visa's test number
PAN_GROUPED = "4111 1111 1111 1111"  # the same, in groups of four
PAN_SPACED = "5500 0000 0000 0004"  # Mastercard's, as people type it
AMEX = "378282246310005"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
API_TOKEN = "sk_live_51HxQpL2eZvKYlo2C"
PASSWORD = "hunter2hunter2"

# Keys that say what they are by their prefix, with no credential name before them (vendors' documented shapes)
BARE_KEYS = [
    API_TOKEN,
    "rk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "AKIAIOSFODNN7EXAMPLE",  # AWS's documented example access key id
    "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",
    "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
    "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
]
