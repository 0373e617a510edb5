// The Go interop suite on go-attestation's newest release (go.mod). Since v0.6 go-attestation is
// TPM 2.0 only (no TPMVersion anywhere) and activates, and verifies quotes and certifications
// of, ECC AKs too.
package latest_test

import (
	"crypto"
	"testing"

	"github.com/google/go-attestation/attest"

	"tpmds.test/interop/suite"
)

var Latest = suite.Library{
	Name:          "go-attestation v0.6.4",
	TPMTools:      "go-tpm-tools v0.4.7",
	ParseAKPublic: attest.ParseAKPublic,
	Activation: func(ek crypto.PublicKey, ak attest.AttestationParameters) *attest.ActivationParameters {
		return &attest.ActivationParameters{EK: ek, AK: ak}
	},
	ECCAK:     true,
	UIDPrefix: "go-v0.6.4",
}

func TestInterop(t *testing.T) {
	suite.CheckGoMod(t, Latest)
	suite.Run(t, Latest, "../../vectors")
}
