// The Go interop suite on go-attestation v0.5.1 and go-tpm-tools v0.4.5, the releases tpmds's
// payloads are specified against (FORMATS.md). latest/ runs the same suite on go-attestation's
// newest release.
package interop_test

import (
	"crypto"
	"testing"

	"github.com/google/go-attestation/attest"

	"tpmds.test/interop/suite"
)

// V051 is go-attestation v0.5.1: TPM 2.0 is one of two TPM versions, named in each call; it
// activates, and verifies quotes and certifications of, RSA AKs only.
var V051 = suite.Library{
	Name:     "go-attestation v0.5.1",
	TPMTools: "go-tpm-tools v0.4.5",
	ParseAKPublic: func(public []byte) (*attest.AKPublic, error) {
		return attest.ParseAKPublic(attest.TPMVersion20, public)
	},
	Activation: func(ek crypto.PublicKey, ak attest.AttestationParameters) *attest.ActivationParameters {
		return &attest.ActivationParameters{TPMVersion: attest.TPMVersion20, EK: ek, AK: ak}
	},
	ECCAK:     false,
	UIDPrefix: "go-v0.5.1",
}

func TestInterop(t *testing.T) {
	suite.CheckGoMod(t, V051)
	suite.Run(t, V051, "../vectors")
}
