// Package suite is the Go interop suite: a Go client of tpmds-attestor built from the real
// go-attestation and go-tpm-tools, exactly as a verifier written against the Go project would use
// them. Both modules (this one, pinned to go-attestation v0.5.1, and latest/, pinned to
// go-attestation's newest release) run it; the few places where go-attestation's API changed
// between those releases are the Library each module passes in.
package suite

import (
	"crypto"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-attestation/attest"
)

// Library is what differs between go-attestation releases.
type Library struct {
	// Name is the go-attestation release, e.g. "go-attestation v0.5.1".
	Name string
	// TPMTools is the go-tpm-tools release the module builds with, e.g. "go-tpm-tools v0.4.5".
	TPMTools string
	// ParseAKPublic is attest.ParseAKPublic for a TPM 2.0 AK.
	ParseAKPublic func(public []byte) (*attest.AKPublic, error)
	// Activation is the attest.ActivationParameters a verifier fills in for a TPM 2.0 AK.
	Activation func(ek crypto.PublicKey, ak attest.AttestationParameters) *attest.ActivationParameters
	// ECCAK says whether this release activates ECC AKs and verifies their quotes and
	// certifications. Where it does not, the suite checks that the library refuses (so that a
	// release that gains it is noticed) and runs those checks with RSA AKs only.
	ECCAK bool
	// UIDPrefix keeps this module's AKs and keys apart from another module's on the same attestor.
	UIDPrefix string
}

// akTypes are the AK key types whose activation, quotes and certifications lib verifies.
func (lib Library) akTypes() []string {
	if lib.ECCAK {
		return []string{"rsa", "ecc"}
	}
	return []string{"rsa"}
}

// Run runs the whole suite: the live attestor (when the harness gave one; see Env), then the
// shared vectors (always; after the live tests, which may have just recorded them).
func Run(t *testing.T, lib Library, vectorsDir string) {
	t.Run("attestor", func(t *testing.T) { RunLive(t, lib) })
	t.Run("vectors", func(t *testing.T) { RunVectors(t, lib, vectorsDir) })
}

// CheckGoMod fails unless the go.mod in the current folder requires exactly the releases that
// lib names, so the names in logs and in the recorded vectors are the versions under test.
func CheckGoMod(t *testing.T, lib Library) {
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{lib.Name, lib.TPMTools} {
		module, version, _ := strings.Cut(name, " ")
		re := regexp.MustCompile(`(?m)^\s*(require\s+)?github\.com/google/` + regexp.QuoteMeta(module) + `\s+(\S+)`)
		m := re.FindSubmatch(gomod)
		if m == nil || string(m[2]) != version {
			t.Fatalf("go.mod does not require github.com/google/%s %s (the Library says so)", module, version)
		}
	}
}
