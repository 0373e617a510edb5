package suite

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-attestation/attest"
	"github.com/google/go-tpm-tools/server"
	"github.com/google/go-tpm/legacy/tpm2"
)

// decodeStrict is json.Unmarshal that also refuses fields the Go type does not have, so a field
// the attestor misnames fails here instead of silently decoding as empty.
func decodeStrict(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// checkEK parses GetEKCert's payload as a Go verifier does: the SPKI with crypto/x509, the
// certificate with attest.ParseEKCertificate, and the certificate must be for that key.
func checkEK(t *testing.T, keyType string, spki, certDER []byte) attest.EK {
	t.Helper()
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		t.Fatalf("EK %s: x509.ParsePKIXPublicKey: %v", keyType, err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if keyType != "rsa" || k.N.BitLen() != 2048 {
			t.Fatalf("EK %s: got an RSA-%d key", keyType, k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if keyType != "ecc" || k.Curve.Params().Name != "P-256" {
			t.Fatalf("EK %s: got an ECDSA %s key", keyType, k.Curve.Params().Name)
		}
	default:
		t.Fatalf("EK %s: unexpected key type %T", keyType, pub)
	}
	if len(certDER) == 0 {
		t.Fatalf("EK %s: no certificate (swtpm is provisioned with one)", keyType)
	}
	cert, err := attest.ParseEKCertificate(certDER)
	if err != nil {
		t.Fatalf("EK %s: attest.ParseEKCertificate: %v", keyType, err)
	}
	if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Fatalf("EK %s: the certificate is not for ekPub", keyType)
	}
	return attest.EK{Public: pub, Certificate: cert}
}

// checkAK decodes GetAK's AttestationParameters and parses the AK with go-attestation.
func checkAK(t *testing.T, lib Library, keyType string, akJSON []byte) (attest.AttestationParameters, *attest.AKPublic) {
	t.Helper()
	var params attest.AttestationParameters
	if err := decodeStrict(akJSON, &params); err != nil {
		t.Fatalf("AK %s: decoding AttestationParameters: %v\n%s", keyType, err, akJSON)
	}
	if params.UseTCSDActivationFormat {
		t.Fatalf("AK %s: UseTCSDActivationFormat is set (TPM 1.2 only)", keyType)
	}
	for name, b := range map[string][]byte{"Public": params.Public, "CreateData": params.CreateData, "CreateAttestation": params.CreateAttestation, "CreateSignature": params.CreateSignature} {
		if len(b) == 0 {
			t.Fatalf("AK %s: AttestationParameters.%s is empty", keyType, name)
		}
	}
	ak, err := lib.ParseAKPublic(params.Public)
	if err != nil {
		t.Fatalf("AK %s: attest.ParseAKPublic: %v", keyType, err)
	}
	if ak.Hash != crypto.SHA256 {
		t.Fatalf("AK %s: signs with %v, want SHA-256", keyType, ak.Hash)
	}
	switch ak.Public.(type) {
	case *rsa.PublicKey:
		if keyType != "rsa" {
			t.Fatalf("AK %s: got an RSA key", keyType)
		}
	case *ecdsa.PublicKey:
		if keyType != "ecc" {
			t.Fatalf("AK %s: got an ECDSA key", keyType)
		}
	default:
		t.Fatalf("AK %s: unexpected key type %T", keyType, ak.Public)
	}
	return params, ak
}

// makeCredential is go-attestation's ActivationParameters.Generate for this EK and AK: it checks
// the AK's creation attestation (signature, attributes, name) before making the credential.
func makeCredential(lib Library, ek crypto.PublicKey, params attest.AttestationParameters) ([]byte, *attest.EncryptedCredential, error) {
	return lib.Activation(ek, params).Generate()
}

// checkQuote decodes Quote's PlatformParameters and verifies it as a go-attestation verifier
// does: the AK is the one asked for, attest.AKPublic.Verify of every quote and VerifyAll of all
// PCRs with the nonce, and the event log parsed and replayed against the verified PCRs. Returns
// the verified PCRs.
func checkQuote(t *testing.T, lib Library, akType string, platformJSON, akPublic, nonce, wantEventLog []byte) []attest.PCR {
	t.Helper()
	// Exactly v0.5.1's fields (FORMATS.md), whichever release decodes it below.
	if err := decodeStrict(platformJSON, &platformParametersV051{}); err != nil {
		t.Fatalf("Quote %s: PlatformParameters is not go-attestation v0.5.1's: %v", akType, err)
	}
	var pp attest.PlatformParameters
	// Not decodeStrict: go-attestation v0.6 dropped the TPM 1.2 fields (TPMVersion, Quote.Version)
	// that v0.5.1's JSON carries; decoding them into the newer type ignores them, as Go does.
	if err := json.Unmarshal(platformJSON, &pp); err != nil {
		t.Fatalf("Quote %s: decoding PlatformParameters: %v", akType, err)
	}
	if !bytes.Equal(pp.Public, akPublic) {
		t.Fatalf("Quote %s: PlatformParameters.Public is not the AK", akType)
	}
	if len(pp.Quotes) == 0 || len(pp.PCRs) == 0 || len(pp.EventLog) == 0 {
		t.Fatalf("Quote %s: %d quotes, %d PCRs, %d bytes of event log", akType, len(pp.Quotes), len(pp.PCRs), len(pp.EventLog))
	}
	if wantEventLog != nil && !bytes.Equal(pp.EventLog, wantEventLog) {
		t.Fatalf("Quote %s: EventLog is not the attestor's --event-log file", akType)
	}
	ak, err := lib.ParseAKPublic(pp.Public)
	if err != nil {
		t.Fatalf("Quote %s: attest.ParseAKPublic: %v", akType, err)
	}
	for i, q := range pp.Quotes {
		if err := ak.Verify(q, pp.PCRs, nonce); err != nil {
			t.Fatalf("Quote %s: AKPublic.Verify of quote %d: %v", akType, i, err)
		}
	}
	if err := ak.VerifyAll(pp.Quotes, pp.PCRs, nonce); err != nil {
		t.Fatalf("Quote %s: AKPublic.VerifyAll: %v", akType, err)
	}
	for _, p := range pp.PCRs {
		if !p.QuoteVerified() {
			t.Fatalf("Quote %s: PCR %d (%v) not verified by a quote", akType, p.Index, p.DigestAlg)
		}
	}
	banks := map[crypto.Hash]int{}
	for _, p := range pp.PCRs {
		banks[p.DigestAlg]++
	}
	if banks[crypto.SHA256] != 24 {
		t.Fatalf("Quote %s: %d SHA-256 PCRs, want 24 (banks: %v)", akType, banks[crypto.SHA256], banks)
	}
	// Another nonce must not verify.
	wrong := append([]byte{}, nonce...)
	wrong[0] ^= 1
	if err := ak.VerifyAll(pp.Quotes, clonePCRs(pp.PCRs), wrong); err == nil {
		t.Fatalf("Quote %s: VerifyAll accepted another nonce", akType)
	}
	el, err := attest.ParseEventLog(pp.EventLog)
	if err != nil {
		t.Fatalf("Quote %s: attest.ParseEventLog: %v", akType, err)
	}
	events, err := el.Verify(pp.PCRs)
	if err != nil {
		t.Fatalf("Quote %s: EventLog.Verify against the quoted PCRs: %v", akType, err)
	}
	if len(events) == 0 {
		t.Fatalf("Quote %s: the event log verified no events", akType)
	}
	// A PCR value the log does not replay to is refused.
	tampered := clonePCRs(pp.PCRs)
	for i := range tampered {
		if tampered[i].Index == 0 {
			tampered[i].Digest = bytes.Repeat([]byte{0xaa}, len(tampered[i].Digest))
		}
	}
	if _, err := el.Verify(tampered); err == nil {
		t.Fatalf("Quote %s: EventLog.Verify accepted a PCR 0 the log does not replay to", akType)
	}
	return pp.PCRs
}

// platformParametersV051 is go-attestation v0.5.1's attest.PlatformParameters, field for field.
type platformParametersV051 struct {
	TPMVersion uint8
	Public     []byte
	Quotes     []struct {
		Version   uint8
		Quote     []byte
		Signature []byte
	}
	PCRs []struct {
		Index     int
		Digest    []byte
		DigestAlg crypto.Hash
	}
	EventLog []byte
}

func clonePCRs(pcrs []attest.PCR) []attest.PCR {
	out := make([]attest.PCR, len(pcrs))
	for i, p := range pcrs {
		out[i] = attest.PCR{Index: p.Index, Digest: append([]byte{}, p.Digest...), DigestAlg: p.DigestAlg}
	}
	return out
}

// pcrValue is the verified value of PCR index in bank h.
func pcrValue(t *testing.T, pcrs []attest.PCR, h crypto.Hash, index int) []byte {
	t.Helper()
	for _, p := range pcrs {
		if p.DigestAlg == h && p.Index == index {
			return p.Digest
		}
	}
	t.Fatalf("no PCR %d in bank %v", index, h)
	return nil
}

// checkNewKey checks NewKey's response as a go-attestation verifier does:
// attest.CertificationParameters.Verify with the AK (where the release verifies with this AK
// type), the certified key is the PEM key. Returns the key.
func checkNewKey(t *testing.T, lib Library, akType, keyType string, ak *attest.AKPublic, pemBytes, certJSON []byte) crypto.PublicKey {
	t.Helper()
	block, rest := pem.Decode(pemBytes)
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("NewKey %s: public is not one PEM PUBLIC KEY block:\n%s", keyType, pemBytes)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatalf("NewKey %s: x509.ParsePKIXPublicKey: %v", keyType, err)
	}
	var cp attest.CertificationParameters
	if err := decodeStrict(certJSON, &cp); err != nil {
		t.Fatalf("NewKey %s: decoding CertificationParameters: %v\n%s", keyType, err, certJSON)
	}
	err = cp.Verify(attest.VerifyOpts{Public: ak.Public, Hash: ak.Hash})
	switch {
	case lib.ECCAK || akType == "rsa":
		if err != nil {
			t.Fatalf("NewKey %s (AK %s): CertificationParameters.Verify: %v", keyType, akType, err)
		}
	case err == nil:
		t.Fatalf("NewKey %s (AK %s): %s now verifies certifications by ECC AKs: set Library.ECCAK", keyType, akType, lib.Name)
	default:
		t.Logf("NewKey %s (AK %s): %s does not verify certifications by ECC AKs (%v); checked with RSA AKs", keyType, akType, lib.Name, err)
	}
	tp, err := tpm2.DecodePublic(cp.Public)
	if err != nil {
		t.Fatalf("NewKey %s: tpm2.DecodePublic(CertificationParameters.Public): %v", keyType, err)
	}
	certified, err := tp.Key()
	if err != nil {
		t.Fatalf("NewKey %s: certified key: %v", keyType, err)
	}
	if !certified.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Fatalf("NewKey %s: the PEM key is not the certified key", keyType)
	}
	return pub
}

// checkGCEKey checks GetGCEEKSigningKey's response as the seed's client (-signUsingEK) and a Go
// verifier do: public is one PEM "PUBLIC KEY" block that crypto/x509 parses, of keyType's
// algorithm. The certificate, when there is one, parses, is for that key, chains to
// root (crypto/x509, and go-tpm-tools' server.VerifyAKCert), and go-tpm-tools'
// server.GetGCEInstanceInfo reads its instance-identity extension. Returns the key and the
// certificate (nil when certDER is empty).
func checkGCEKey(t *testing.T, keyType string, pemBytes, certDER []byte, root *x509.Certificate) (crypto.PublicKey, *x509.Certificate) {
	t.Helper()
	block, rest := pem.Decode(pemBytes)
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("GetGCEEKSigningKey %s: public is not one PEM PUBLIC KEY block:\n%s", keyType, pemBytes)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatalf("GetGCEEKSigningKey %s: x509.ParsePKIXPublicKey: %v", keyType, err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if keyType != "rsa" || k.N.BitLen() != 2048 {
			t.Fatalf("GetGCEEKSigningKey %s: got an RSA-%d key", keyType, k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if keyType != "ecc" || k.Curve.Params().Name != "P-256" {
			t.Fatalf("GetGCEEKSigningKey %s: got an ECDSA %s key", keyType, k.Curve.Params().Name)
		}
	default:
		t.Fatalf("GetGCEEKSigningKey %s: unexpected key type %T", keyType, pub)
	}
	if len(certDER) == 0 {
		return pub, nil
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		t.Fatalf("GetGCEEKSigningKey %s: x509.ParseCertificate: %v", keyType, err)
	}
	if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Fatalf("GetGCEEKSigningKey %s: the certificate is not for the returned key", keyType)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("GetGCEEKSigningKey %s: the certificate does not chain to TPMDS_INTEROP_GCE_CA: %v", keyType, err)
	}
	if err := server.VerifyAKCert(cert, []*x509.Certificate{root}, nil); err != nil {
		t.Fatalf("GetGCEEKSigningKey %s: server.VerifyAKCert: %v", keyType, err)
	}
	info, err := server.GetGCEInstanceInfo(cert)
	if err != nil {
		t.Fatalf("GetGCEEKSigningKey %s: server.GetGCEInstanceInfo: %v", keyType, err)
	}
	if info == nil || info.GetInstanceName() == "" || info.GetZone() == "" {
		t.Fatalf("GetGCEEKSigningKey %s: server.GetGCEInstanceInfo found no instance identity (%v)", keyType, info)
	}
	return pub, cert
}

// verifySignature checks a Sign/ImportSigningKey signature over SHA-256(data) with Go's crypto:
// RSA PKCS#1 v1.5, or ECDSA ASN.1 DER.
func verifySignature(pub crypto.PublicKey, data, sig []byte) error {
	digest := sha256.Sum256(data)
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest[:], sig) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
}
