package cli

// examples are the EXAMPLES sections of the commands' --help (clirun.SetExamples). The tests
// check that every command has one and that every flag they use exists on it.
var examples = map[string]string{
	"init": `
# the key and ledger go to the default state folder (see --state-dir)
byok-online init --media /media/usb/airgap-byok
byok-online init --media /media/usb/airgap-byok --state-dir /srv/byok/online --name online-dc1`,
	"trust": `
# the fingerprint byok-offline init printed, read aloud by the offline operator
byok-online trust --media /media/usb/airgap-byok --fingerprint 7KQ2-M9XD-4TNV-H3PA`,
	"kek create": `
# Azure: signs in through azidentity (az login, a managed identity, ...)
byok-online kek create --media /media/usb/airgap-byok --vault https://contoso.vault.azure.net --name kek-1
# the local Key Vault (kvemu): its CA and a bearer token
byok-online kek create --media /media/usb/airgap-byok --vault https://127.0.0.1:8443 --name kek-1 --ca-file kvemu-ca.pem --token-file kvemu.token
# another version of kek-1 while its last offer has not expired
byok-online kek create --media /media/usb/airgap-byok --vault https://contoso.vault.azure.net --name kek-1 --new-version`,
	"verify": `
byok-online verify --media /media/usb/airgap-byok`,
	"upload": `
byok-online upload --media /media/usb/airgap-byok
# what would be sent, sending nothing
byok-online upload --media /media/usb/airgap-byok --dry-run
byok-online upload --media /media/usb/airgap-byok --package 9TNV-3HXQ-M2DK-7PZA --ca-file kvemu-ca.pem --token-file kvemu.token`,
	"status": `
byok-online status --state-dir /srv/byok/online
byok-online status --media /media/usb/airgap-byok --json`,
	"inspect": `
byok-online inspect /media/usb/airgap-byok/offline/0000000000000/0000000000000002-dc48ad456f2774cf6b44f39506a9db5559d04ff7e1eca358f99f45afce0bfc34.bundle
byok-online inspect --unverified suspicious.bundle`,
	"audit": `
byok-online audit --media /media/usb/airgap-byok --policy 7KQ2-M9XD-4TNV-H3PA
# receipts missing from this stick are looked up in this station's ledger
byok-online audit --media /media/usb/airgap-byok --state-dir /srv/byok/online --html report.html`,
	"verify-release": `
byok-online verify-release --allowed-signers publisher.allowed dist/
byok-online verify-release dist/`,
	"version": `
byok-online version
byok-online version --json`,
	"media restore": `
# onto an empty folder on a new stick
byok-online media restore --to /media/new-usb/airgap-byok`,
	"media copy": `
byok-online media copy /media/usb/airgap-byok /media/backup-usb/airgap-byok`,
	"completion": `
byok-online completion bash > /etc/bash_completion.d/byok-online`,
}
