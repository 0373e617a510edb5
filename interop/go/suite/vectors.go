package suite

import (
	"bytes"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-attestation/attest"
	pb "github.com/google/go-tpm-tools/proto/tpm"
	"github.com/google/go-tpm/legacy/tpm2"
	"google.golang.org/protobuf/proto"
)

// The shared vectors (interop/vectors/): payloads from one live run, as they crossed the wire,
// one file each, and manifest.json with the values that go with them (secrets, nonces, signed
// data; hex). Made by the attestor: ek-*, ak-*, quote-*, newkey-*. Made by go-attestation and
// go-tpm-tools: credential-*, importblob-*, signingkey-*. The Go suite (RunVectors) and
// packages/attestor/test/go-interop-vectors.test.ts both decode and check all of them.
//
// They come from a run of the live suite with TPMDS_INTEROP_RECORD set (see the folder's README).

// Manifest is interop/vectors/manifest.json.
type Manifest struct {
	// Recorded says which libraries made the Go side's payloads.
	Recorded string `json:"recorded"`
	// Files are the payload files of the folder.
	Files []string `json:"files"`
	// Values (hex) that go with them, e.g. "quote-rsa.nonce".
	Values map[string]string `json:"values"`
}

type recorder struct {
	dir   string
	man   Manifest
	files map[string][]byte
}

func newRecorder(dir string, lib Library) *recorder {
	return &recorder{dir: dir, man: Manifest{Recorded: lib.Name + ", " + lib.TPMTools, Values: map[string]string{}}, files: map[string][]byte{}}
}

// file and value do nothing on a nil recorder (a run that does not record).
func (r *recorder) file(name string, data []byte) {
	if r != nil {
		r.files[name] = append([]byte{}, data...)
	}
}

func (r *recorder) value(name string, data []byte) {
	if r != nil {
		r.man.Values[name] = hex.EncodeToString(data)
	}
}

func (r *recorder) write() error {
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	for name, data := range r.files {
		if err := os.WriteFile(filepath.Join(r.dir, name), data, 0o644); err != nil {
			return err
		}
		r.man.Files = append(r.man.Files, name)
	}
	sort.Strings(r.man.Files)
	m, err := json.MarshalIndent(r.man, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.dir, "manifest.json"), append(m, '\n'), 0o644)
}

type vectors struct {
	t   *testing.T
	dir string
	man Manifest
}

func (v *vectors) file(name string) []byte {
	v.t.Helper()
	b, err := os.ReadFile(filepath.Join(v.dir, name))
	if err != nil {
		v.t.Fatalf("vector %s: %v", name, err)
	}
	return b
}

func (v *vectors) value(name string) []byte {
	v.t.Helper()
	s, ok := v.man.Values[name]
	if !ok {
		v.t.Fatalf("manifest.json has no value %q", name)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		v.t.Fatalf("manifest.json value %q: %v", name, err)
	}
	return b
}

// RunVectors decodes and checks the shared vectors in dir with go-attestation and go-tpm-tools,
// offline: no attestor, no TPM.
func RunVectors(t *testing.T, lib Library, dir string) {
	m, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatalf("the shared vectors: %v", err)
	}
	v := &vectors{t: t, dir: dir}
	if err := decodeStrict(m, &v.man); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	for _, f := range v.man.Files {
		v.file(f)
	}

	// Made by the attestor, checked with go-attestation.
	eks := map[string]attest.EK{}
	for _, kt := range []string{"rsa", "ecc"} {
		eks[kt] = checkEK(t, kt, v.file("ek-"+kt+".der"), v.file("ek-"+kt+"-cert.der"))
	}
	params := map[string]attest.AttestationParameters{}
	aks := map[string]*attest.AKPublic{}
	for _, kt := range []string{"rsa", "ecc"} {
		params[kt], aks[kt] = checkAK(t, lib, kt, v.file("ak-"+kt+".json"))
	}
	for _, akType := range lib.akTypes() {
		// Generate checks the AK's creation attestation before making a credential.
		for _, ekType := range []string{"rsa", "ecc"} {
			if _, _, err := makeCredential(lib, eks[ekType].Public, params[akType]); err != nil {
				t.Fatalf("ActivationParameters.Generate (AK %s, EK %s): %v", akType, ekType, err)
			}
		}
		checkQuote(t, lib, akType, v.file("quote-"+akType+".json"), params[akType].Public, v.value("quote-"+akType+".nonce"), nil)
	}
	for _, keyType := range []string{"rsa", "ecc"} {
		pub := checkNewKey(t, lib, "rsa", keyType, aks["rsa"], v.file("newkey-"+keyType+".pem"), v.file("newkey-"+keyType+"-certification.json"))
		if err := verifySignature(pub, v.value("newkey-"+keyType+".data"), v.file("newkey-"+keyType+".sig")); err != nil {
			t.Fatalf("newkey-%s.sig: %v", keyType, err)
		}
	}

	// Made by go-attestation and go-tpm-tools: they decode as the attestor's payloads must.
	for _, ekType := range []string{"rsa", "ecc"} {
		var ec attest.EncryptedCredential
		if err := decodeStrict(v.file("credential-ak-rsa-ek-"+ekType+".json"), &ec); err != nil || len(ec.Credential) == 0 || len(ec.Secret) == 0 {
			t.Fatalf("credential-ak-rsa-ek-%s.json: %v", ekType, err)
		}
		for _, name := range []string{"importblob-ek-" + ekType, "importblob-ek-" + ekType + "-pcr", "signingkey-ek-" + ekType} {
			raw := v.file(name + ".pb")
			var blob pb.ImportBlob
			if err := proto.Unmarshal(raw, &blob); err != nil {
				t.Fatalf("%s.pb: %v", name, err)
			}
			if again, err := deterministic.Marshal(&blob); err != nil || !bytes.Equal(again, raw) {
				t.Fatalf("%s.pb does not re-encode to the same bytes (%v)", name, err)
			}
			pub, err := tpm2.DecodePublic(blob.PublicArea)
			if err != nil {
				t.Fatalf("%s.pb: PublicArea: %v", name, err)
			}
			if len(blob.Duplicate) == 0 || len(blob.EncryptedSeed) == 0 {
				t.Fatalf("%s.pb: empty Duplicate or EncryptedSeed", name)
			}
			bound := blob.Pcrs != nil && len(blob.Pcrs.Pcrs) > 0
			if bound != (name == "importblob-ek-"+ekType+"-pcr") {
				t.Fatalf("%s.pb: PCR-bound is %v", name, bound)
			}
			if name == "signingkey-ek-"+ekType {
				key, err := pub.Key()
				if err != nil {
					t.Fatalf("%s.pb: %v", name, err)
				}
				rk, ok := key.(*rsa.PublicKey)
				if !ok || rk.N.Cmp(new(big.Int).SetBytes(v.value(name+".modulus"))) != 0 {
					t.Fatalf("%s.pb: PublicArea is not the imported RSA key", name)
				}
				if pub.RSAParameters.Sign == nil || pub.RSAParameters.Sign.Hash != tpm2.AlgSHA256 {
					t.Fatalf("%s.pb: not an RSASSA-SHA256 key", name)
				}
			}
		}
	}
}
