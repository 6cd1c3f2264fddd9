"""Card numbers and credentials that must never leave hotpath unmasked, as senders put them in records."""

PAN = "4111111111111111"  # Visa's test number
PAN_GROUPED = "4111 1111 1111 1111"  # the same, in groups of four
PAN_SPACED = "5500 0000 0000 0004"  # Mastercard's, as people type it
AMEX = "378282246310005"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
API_TOKEN = "sk_live_51HxQpL2eZvKYlo2C"
PASSWORD = "hunter2hunter2"
