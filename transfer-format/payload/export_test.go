package payload

// Test hooks for package payload_test: the fast canonical reader and the general decoder,
// to compare them.
var (
	DecodeCanonical = decodeCanonical
	DecodeJSON      = decodeJSON
	CheckVaultURL   = checkVaultURL
)
