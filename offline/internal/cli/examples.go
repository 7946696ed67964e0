package cli

// examples are the EXAMPLES sections of the commands' --help (clirun.SetExamples). The tests
// check that every command has one and that every flag they use exists on it.
var examples = map[string]string{
	"hsm check": `
# before init: name the module and the station's token
byok-offline hsm check --hsm-module /usr/lib/softhsm/libsofthsm2.so --token-label station
# after init: the module and token init recorded in the state folder
byok-offline hsm check --pin-file station.pin`,
	"init": `
# 2 of 3 custodians, one Premium vault; the ledger goes to the default state folder (see --state-dir)
byok-offline init --media /media/usb/airgap-byok --hsm-module /usr/lib/softhsm/libsofthsm2.so --token-label station --custodian alice=alice-card --custodian bob=bob-card --custodian carol=carol-card --threshold 2 --vault https://contoso.vault.azure.net=premium:westeurope --online-fingerprint 7KQ2-M9XD-4TNV-H3PA
# two regions, each with custodians of its own: 2 of alice and bob approve keys for Europe, 1 of carol and dave for the US
byok-offline init --media /media/usb/airgap-byok --hsm-module /usr/lib/softhsm/libsofthsm2.so --token-label station --custodian alice=alice-card --custodian bob=bob-card --custodian carol=carol-card --custodian dave=dave-card --threshold 3 --vault https://contoso-eu.vault.azure.net=premium:westeurope --vault https://contoso-us.vault.azure.net=premium:eastus --region westeurope=2:alice,bob --region eastus=1:carol,dave --online-fingerprint 7KQ2-M9XD-4TNV-H3PA`,
	"kek accept": `
byok-offline kek accept --media /media/usb/airgap-byok
# only the offer whose fingerprint the online operator read aloud
byok-offline kek accept --media /media/usb/airgap-byok --offer 3HXQ-7PZA-KM2D-9TNV`,
	"keygen": `
byok-offline keygen --type RSA-3072 --ident contosokey --pin-file station.pin
# adopt a key the HSM already holds
byok-offline keygen --type EC-P256 --ident legacy-ec --select-label legacy-signing-key
# a key that may live only in European vaults
byok-offline keygen --type RSA-3072 --ident eu-key --regions westeurope,northeurope`,
	"package": `
byok-offline package --media /media/usb/airgap-byok --key contosokey --vault https://contoso.vault.azure.net
# two keys in one run, with an expiry and a tag in Key Vault
byok-offline package --media /media/usb/airgap-byok --key contosokey,contoso-ec --vault https://contoso.vault.azure.net --expires 8760h --tag owner=payments
# one key to two vaults (one key package each), and to every vault of a region
byok-offline package --media /media/usb/airgap-byok --key contosokey --vault https://contoso-eu.vault.azure.net --vault https://contoso-us.vault.azure.net
byok-offline package --media /media/usb/airgap-byok --key eu-key --region westeurope`,
	"approve": `
# every custodian who has not approved yet, each asked for their PIN
byok-offline approve --media /media/usb/airgap-byok --package 9TNV-3HXQ-M2DK-7PZA
# two packages, alice and bob, each entering their PIN once
byok-offline approve --media /media/usb/airgap-byok --package 9TNV-3HXQ-M2DK-7PZA --package 4KQD-8WME-2RTX-6JNB --custodian alice --custodian bob
# every key package waiting for the vaults of westeurope, each custodian entering their PIN once
byok-offline approve --media /media/usb/airgap-byok --region westeurope --custodian alice --custodian bob`,
	"policy amend": `
byok-offline policy amend --media /media/usb/airgap-byok --add-custodian dave=dave-card --remove-custodian bob --threshold 2
# allow EC-P384 keys, which every KEK wraps with less strength than the key has
byok-offline policy amend --media /media/usb/airgap-byok --allow-weaker-kek --key-types RSA-3072,EC-P256,EC-P384
# westeurope's keys need 1 of alice and erin from now on (westeurope's current custodians approve this too)
byok-offline policy amend --media /media/usb/airgap-byok --region westeurope=1:alice,erin --add-custodian erin=erin-card`,
	"policy approve": `
byok-offline policy approve --media /media/usb/airgap-byok --custodian alice --custodian carol`,
	"sync": `
byok-offline sync --media /media/usb/airgap-byok`,
	"status": `
byok-offline status --state-dir /srv/byok/offline
byok-offline status --json`,
	"log": `
byok-offline log --media /media/usb/airgap-byok`,
	"inspect": `
byok-offline inspect /media/usb/airgap-byok/online/0000000000000/0000000000000001-17a83ec5f4bfbefa6073addbc832750350e1063b20166579fe50a47e893522b1.bundle
byok-offline inspect --unverified suspicious.bundle`,
	"audit": `
byok-offline audit --media /media/usb/airgap-byok --policy 7KQ2-M9XD-4TNV-H3PA --html report.html
byok-offline audit --media /media/usb/airgap-byok --since last.checkpoint --checkpoint next.checkpoint --json`,
	"verify-release": `
byok-offline verify-release --allow-missing /media/usb/release
byok-offline verify-release --allowed-signers publisher.allowed /media/usb/release`,
	"version": `
byok-offline version
byok-offline version --json`,
	"media restore": `
# onto an empty folder on a new stick
byok-offline media restore --to /media/new-usb/airgap-byok`,
	"media copy": `
byok-offline media copy /media/usb/airgap-byok /media/backup-usb/airgap-byok`,
	"completion": `
byok-offline completion bash > /etc/bash_completion.d/byok-offline`,
}
