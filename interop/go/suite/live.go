package suite

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/go-attestation/attest"
	pb "github.com/google/go-tpm-tools/proto/tpm"
	"github.com/google/go-tpm-tools/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"tpmds.test/interop/verifier"
)

// Env is how the harness (packages/attestor/test/go-interop.test.ts) hands over the attestor it
// started on swtpm: --auth mtls with TLS, and this suite's client certificate.
type Env struct {
	Addr     string // TPMDS_INTEROP_ADDR: host:port of the gRPC server
	CA       string // TPMDS_INTEROP_CA: PEM CA of the server certificate (issued for 127.0.0.1)
	Cert     string // TPMDS_INTEROP_CERT: client certificate (PEM), the caller's identity
	Key      string // TPMDS_INTEROP_KEY: its private key (PEM)
	EventLog string // TPMDS_INTEROP_EVENT_LOG: the attestor's --event-log file
	Record   string // TPMDS_INTEROP_RECORD: if set, write the shared vectors into this folder
	// GCECA is TPMDS_INTEROP_GCE_CA: PEM CA of the cloud attestation key's certificate. Setting it
	// says the harness provisioned the TPM like a GCE vTPM (the RSA and ECC templates in NV
	// 0x01c10001 / 0x01c10003, an RSA certificate from this CA in NV 0x01c10000) and allowed this
	// client SignGCEEK (--allow-node-key). Without it the GetGCEEKSigningKey/SignGCEEK step skips.
	GCECA string
}

// EnvFromOS reads Env; without TPMDS_INTEROP_ADDR it skips the test with one line saying how to run it.
func EnvFromOS(t *testing.T) Env {
	e := Env{
		Addr:     os.Getenv("TPMDS_INTEROP_ADDR"),
		CA:       os.Getenv("TPMDS_INTEROP_CA"),
		Cert:     os.Getenv("TPMDS_INTEROP_CERT"),
		Key:      os.Getenv("TPMDS_INTEROP_KEY"),
		EventLog: os.Getenv("TPMDS_INTEROP_EVENT_LOG"),
		Record:   os.Getenv("TPMDS_INTEROP_RECORD"),
		GCECA:    os.Getenv("TPMDS_INTEROP_GCE_CA"),
	}
	if e.Addr == "" {
		t.Skip("TPMDS_INTEROP_ADDR not set: the live tests run from mocha, which starts swtpm and the attestor (npx mocha packages/attestor/test/go-interop.test.ts)")
	}
	return e
}

// Dial connects with mTLS as the attestor's --auth mtls expects.
func Dial(e Env) (*grpc.ClientConn, error) {
	caPEM, err := os.ReadFile(e.CA)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in %s", e.CA)
	}
	cert, err := tls.LoadX509KeyPair(e.Cert, e.Key)
	if err != nil {
		return nil, err
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	return grpc.NewClient(e.Addr, grpc.WithTransportCredentials(creds))
}

type live struct {
	t      *testing.T
	lib    Library
	env    Env
	client verifier.VerifierClient
	rec    *recorder

	eventLog []byte
	eks      map[string]attest.EK
	akParams map[string]attest.AttestationParameters
	aks      map[string]*attest.AKPublic
	pcrs     []attest.PCR // verified by the RSA AK's quote
}

func (l *live) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

func (l *live) uid(akType string) string { return l.lib.UIDPrefix + "-" + akType }

// RunLive runs every RPC of the attestor in Env against go-attestation and go-tpm-tools.
func RunLive(t *testing.T, lib Library) {
	env := EnvFromOS(t)
	conn, err := Dial(env)
	if err != nil {
		t.Fatalf("dialing %s: %v", env.Addr, err)
	}
	defer conn.Close()
	l := &live{t: t, lib: lib, env: env, client: verifier.NewVerifierClient(conn),
		eks: map[string]attest.EK{}, akParams: map[string]attest.AttestationParameters{}, aks: map[string]*attest.AKPublic{}}
	if env.EventLog != "" {
		if l.eventLog, err = os.ReadFile(env.EventLog); err != nil {
			t.Fatal(err)
		}
	}
	if env.Record != "" {
		l.rec = newRecorder(env.Record, lib)
	}
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"GetEK", l.getEK},
		{"GetAK", l.getAK},
		{"Attest", l.attest},
		{"Quote", l.quote},
		{"ImportBlob", l.importBlob},
		{"ImportSigningKey", l.importSigningKey},
		{"NewKey+Sign", l.newKeySign},
		{"GetGCEEKSigningKey+SignGCEEK", l.gceAK},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.Fatalf("%s failed; the later steps need it", s.name)
		}
	}
	if l.rec != nil {
		if err := l.rec.write(); err != nil {
			t.Fatalf("writing the vectors: %v", err)
		}
		t.Logf("wrote the shared vectors to %s", env.Record)
	}
}

func (l *live) getEK(t *testing.T) {
	for _, kt := range []string{"rsa", "ecc"} {
		ctx, cancel := l.ctx()
		res, err := l.client.GetEKCert(ctx, &verifier.GetEKCertRequest{KeyType: kt})
		cancel()
		if err != nil {
			t.Fatalf("GetEKCert(%s): %v", kt, err)
		}
		l.eks[kt] = checkEK(t, kt, res.EkPub, res.EkCert)
		l.rec.file("ek-"+kt+".der", res.EkPub)
		l.rec.file("ek-"+kt+"-cert.der", res.EkCert)
	}
	// The seed's GetEK with an empty request is the RSA EK.
	ctx, cancel := l.ctx()
	defer cancel()
	res, err := l.client.GetEK(ctx, &verifier.GetEKCertRequest{})
	if err != nil {
		t.Fatalf("GetEK: %v", err)
	}
	if !checkEK(t, "rsa", res.EkPub, res.EkCert).Public.(*rsa.PublicKey).Equal(l.eks["rsa"].Public) {
		t.Fatal("GetEK({}) is not the RSA EK")
	}
}

func (l *live) getAK(t *testing.T) {
	for _, kt := range []string{"rsa", "ecc"} {
		var first []byte
		for i := 0; i < 2; i++ {
			ctx, cancel := l.ctx()
			res, err := l.client.GetAK(ctx, &verifier.GetAKRequest{Uid: l.uid(kt), KeyType: kt})
			cancel()
			if err != nil {
				t.Fatalf("GetAK(%s): %v", kt, err)
			}
			if i == 1 && !bytes.Equal(res.Ak, first) {
				t.Fatalf("GetAK(%s): a second call returned another AK", kt)
			}
			first = res.Ak
		}
		l.akParams[kt], l.aks[kt] = checkAK(t, l.lib, kt, first)
		l.rec.file("ak-"+kt+".json", first)
	}
}

func (l *live) attest(t *testing.T) {
	for _, akType := range []string{"rsa", "ecc"} {
		for _, ekType := range []string{"rsa", "ecc"} {
			secret, ec, err := makeCredential(l.lib, l.eks[ekType].Public, l.akParams[akType])
			if !l.lib.ECCAK && akType == "ecc" {
				if err == nil {
					t.Fatalf("%s now activates ECC AKs: set Library.ECCAK", l.lib.Name)
				}
				t.Logf("AK ecc: %s does not activate ECC AKs (%v); activation checked with the RSA AK", l.lib.Name, err)
				break
			}
			if err != nil {
				t.Fatalf("ActivationParameters.Generate (AK %s, EK %s): %v", akType, ekType, err)
			}
			ecJSON, err := json.Marshal(ec)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := l.ctx()
			res, err := l.client.Attest(ctx, &verifier.AttestRequest{Uid: l.uid(akType), EncryptedCredentials: ecJSON})
			cancel()
			if err != nil {
				t.Fatalf("Attest (AK %s, EK %s): %v", akType, ekType, err)
			}
			if !bytes.Equal(res.Secret, secret) {
				t.Fatalf("Attest (AK %s, EK %s): the secret differs", akType, ekType)
			}
			if akType == "rsa" {
				l.rec.file(fmt.Sprintf("credential-ak-rsa-ek-%s.json", ekType), ecJSON)
				l.rec.value(fmt.Sprintf("credential-ak-rsa-ek-%s.secret", ekType), secret)
			}
			// The same credential for the other uid's AK does not activate.
			other := map[string]string{"rsa": "ecc", "ecc": "rsa"}[akType]
			ctx, cancel = l.ctx()
			_, err = l.client.Attest(ctx, &verifier.AttestRequest{Uid: l.uid(other), EncryptedCredentials: ecJSON})
			cancel()
			if code := status.Code(err); code != codes.InvalidArgument && code != codes.FailedPrecondition {
				t.Fatalf("Attest with a credential for another AK: got %v, want INVALID_ARGUMENT or FAILED_PRECONDITION", err)
			}
		}
	}
}

func (l *live) quote(t *testing.T) {
	for _, akType := range []string{"rsa", "ecc"} {
		nonce := make([]byte, 32)
		if _, err := rand.Read(nonce); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := l.ctx()
		res, err := l.client.Quote(ctx, &verifier.QuoteRequest{Uid: l.uid(akType), Nonce: nonce})
		cancel()
		if err != nil {
			t.Fatalf("Quote (AK %s): %v", akType, err)
		}
		l.rec.file("quote-"+akType+".json", res.PlatformAttestation)
		l.rec.value("quote-"+akType+".nonce", nonce)
		if !l.lib.ECCAK && akType == "ecc" {
			var pp attest.PlatformParameters
			if err := json.Unmarshal(res.PlatformAttestation, &pp); err != nil {
				t.Fatal(err)
			}
			if err := l.aks[akType].VerifyAll(pp.Quotes, pp.PCRs, nonce); err == nil {
				t.Fatalf("%s now verifies ECC AK quotes: set Library.ECCAK", l.lib.Name)
			} else {
				t.Logf("Quote (AK ecc): %s does not verify ECC AK quotes (%v); verified with the RSA AK", l.lib.Name, err)
			}
			continue
		}
		pcrs := checkQuote(t, l.lib, akType, res.PlatformAttestation, l.akParams[akType].Public, nonce, l.eventLog)
		if akType == "rsa" {
			l.pcrs = pcrs
		}
	}
}

// importPCRs binds a blob to PCRs 0 and 7 (SHA-256) at their quoted values.
func (l *live) importPCRs(t *testing.T, wrong bool) *pb.PCRs {
	p0 := pcrValue(t, l.pcrs, crypto.SHA256, 0)
	p7 := append([]byte{}, pcrValue(t, l.pcrs, crypto.SHA256, 7)...)
	if wrong {
		p7[0] ^= 1
	}
	return &pb.PCRs{Hash: pb.HashAlgo_SHA256, Pcrs: map[uint32][]byte{0: p0, 7: p7}}
}

var deterministic = proto.MarshalOptions{Deterministic: true}

func (l *live) importBlob(t *testing.T) {
	uid := l.uid("rsa")
	for _, ekType := range []string{"rsa", "ecc"} {
		for _, bound := range []bool{false, true} {
			what := fmt.Sprintf("ImportBlob (EK %s, PCR-bound %v)", ekType, bound)
			secret := make([]byte, 40)
			if _, err := rand.Read(secret); err != nil {
				t.Fatal(err)
			}
			var pcrs *pb.PCRs
			if bound {
				pcrs = l.importPCRs(t, false)
			}
			blob, err := server.CreateImportBlob(l.eks[ekType].Public, secret, pcrs)
			if err != nil {
				t.Fatalf("%s: server.CreateImportBlob: %v", what, err)
			}
			raw, err := deterministic.Marshal(blob)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := l.ctx()
			res, err := l.client.ImportBlob(ctx, &verifier.ImportBlobRequest{Uid: uid, EncryptedKey: raw})
			cancel()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if !bytes.Equal(res.DecryptedKey, secret) {
				t.Fatalf("%s: the secret differs", what)
			}
			name := fmt.Sprintf("importblob-ek-%s", ekType)
			if bound {
				name += "-pcr"
			}
			l.rec.file(name+".pb", raw)
			l.rec.value(name+".secret", secret)
		}
		// Bound to a PCR value the TPM does not have: refused.
		blob, err := server.CreateImportBlob(l.eks[ekType].Public, []byte("never"), l.importPCRs(t, true))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := deterministic.Marshal(blob)
		ctx, cancel := l.ctx()
		_, err = l.client.ImportBlob(ctx, &verifier.ImportBlobRequest{Uid: uid, EncryptedKey: raw})
		cancel()
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("ImportBlob (EK %s) bound to a wrong PCR 7: got %v, want FAILED_PRECONDITION", ekType, err)
		}
	}
}

func (l *live) importSigningKey(t *testing.T) {
	uid := l.uid("rsa")
	for _, ekType := range []string{"rsa", "ecc"} {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		blob, err := server.CreateSigningKeyImportBlob(l.eks[ekType].Public, key, nil)
		if err != nil {
			t.Fatalf("server.CreateSigningKeyImportBlob (EK %s): %v", ekType, err)
		}
		raw, err := deterministic.Marshal(blob)
		if err != nil {
			t.Fatal(err)
		}
		kid := "imported-ek-" + ekType
		ctx, cancel := l.ctx()
		res, err := l.client.ImportSigningKey(ctx, &verifier.ImportSigningKeyRequest{Uid: uid, Kid: kid, EncryptedSigningKey: raw})
		cancel()
		if err != nil {
			t.Fatalf("ImportSigningKey (EK %s): %v", ekType, err)
		}
		if err := verifySignature(&key.PublicKey, []byte(uid), res.Confirmation); err != nil {
			t.Fatalf("ImportSigningKey (EK %s): the confirmation over SHA-256(uid) does not verify with the imported key: %v", ekType, err)
		}
		data := []byte("signed by a key imported with go-tpm-tools, EK " + ekType)
		l.sign(t, uid, kid, &key.PublicKey, data)
		l.rec.file("signingkey-ek-"+ekType+".pb", raw)
		l.rec.value("signingkey-ek-"+ekType+".modulus", key.N.Bytes())
	}
	// Bound to PCRs 0 and 7: imported and usable while they hold those values; bound to a wrong
	// PCR 7, the import (which signs the confirmation) is refused.
	for _, wrong := range []bool{false, true} {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		blob, err := server.CreateSigningKeyImportBlob(l.eks["ecc"].Public, key, l.importPCRs(t, wrong))
		if err != nil {
			t.Fatalf("server.CreateSigningKeyImportBlob (PCR-bound): %v", err)
		}
		raw, _ := deterministic.Marshal(blob)
		kid := fmt.Sprintf("imported-pcr-bound-%v", wrong)
		ctx, cancel := l.ctx()
		res, err := l.client.ImportSigningKey(ctx, &verifier.ImportSigningKeyRequest{Uid: uid, Kid: kid, EncryptedSigningKey: raw})
		cancel()
		if wrong {
			if status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("ImportSigningKey bound to a wrong PCR 7: got %v, want FAILED_PRECONDITION", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ImportSigningKey (PCR-bound): %v", err)
		}
		if err := verifySignature(&key.PublicKey, []byte(uid), res.Confirmation); err != nil {
			t.Fatalf("ImportSigningKey (PCR-bound): the confirmation does not verify: %v", err)
		}
		l.sign(t, uid, kid, &key.PublicKey, []byte("signed by a PCR-bound imported key"))
	}
	// go-tpm-tools makes RSA signing-key blobs only.
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.CreateSigningKeyImportBlob(l.eks["rsa"].Public, ecKey, nil); err == nil {
		t.Fatal("go-tpm-tools now makes ECC signing-key import blobs: import one here too")
	} else {
		t.Logf("ECC signing keys: go-tpm-tools does not make their import blobs (%v)", err)
	}
}

// sign calls Sign and verifies the signature with Go's crypto; a signature over other data must not verify.
func (l *live) sign(t *testing.T, uid, kid string, pub crypto.PublicKey, data []byte) []byte {
	t.Helper()
	ctx, cancel := l.ctx()
	res, err := l.client.Sign(ctx, &verifier.SignRequest{Uid: uid, Kid: kid, Data: data})
	cancel()
	if err != nil {
		t.Fatalf("Sign(%s/%s): %v", uid, kid, err)
	}
	if err := verifySignature(pub, data, res.Signed); err != nil {
		t.Fatalf("Sign(%s/%s): %v", uid, kid, err)
	}
	if err := verifySignature(pub, append([]byte("x"), data...), res.Signed); err == nil {
		t.Fatalf("Sign(%s/%s): the signature also verifies other data", uid, kid)
	}
	return res.Signed
}

func (l *live) newKeySign(t *testing.T) {
	for _, akType := range []string{"rsa", "ecc"} {
		for _, keyType := range []string{"rsa", "ecc"} {
			uid, kid := l.uid(akType), "new-"+keyType
			ctx, cancel := l.ctx()
			res, err := l.client.NewKey(ctx, &verifier.NewKeyRequest{Uid: uid, Kid: kid, KeyType: keyType})
			cancel()
			if err != nil {
				t.Fatalf("NewKey(%s, AK %s): %v", keyType, akType, err)
			}
			pub := checkNewKey(t, l.lib, akType, keyType, l.aks[akType], res.Public, res.KeyCertification)
			data := []byte(fmt.Sprintf("signed by a %s key certified by the %s AK", keyType, akType))
			sig := l.sign(t, uid, kid, pub, data)
			if akType == "rsa" {
				l.rec.file("newkey-"+keyType+".pem", res.Public)
				l.rec.file("newkey-"+keyType+"-certification.json", res.KeyCertification)
				l.rec.file("newkey-"+keyType+".sig", sig)
				l.rec.value("newkey-"+keyType+".data", data)
			}
		}
	}
}

// gceAK checks the cloud attestation key as the seed's client does with -signUsingEK
// (GetGCEEKSigningKey, then SignGCEEK verified with Go's crypto), for the RSA key with the seed's
// field-less requests and for the ECC key with keyType "ecc".
func (l *live) gceAK(t *testing.T) {
	if l.env.GCECA == "" {
		t.Skip("TPMDS_INTEROP_GCE_CA not set: this harness provisions no cloud attestation key, so GetGCEEKSigningKey and SignGCEEK are not checked")
	}
	caPEM, err := os.ReadFile(l.env.GCECA)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no PEM certificate in %s", l.env.GCECA)
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("TPMDS_INTEROP_GCE_CA: %v", err)
	}
	for _, keyType := range []string{"rsa", "ecc"} {
		// The seed's client sends no keyType: its requests are the RSA key's.
		reqType := map[string]string{"rsa": "", "ecc": "ecc"}[keyType]
		var pub crypto.PublicKey
		var certDER []byte
		for i := 0; i < 2; i++ {
			ctx, cancel := l.ctx()
			res, err := l.client.GetGCEEKSigningKey(ctx, &verifier.GetGCEEKSigningKeyRequest{KeyType: reqType})
			cancel()
			if err != nil {
				t.Fatalf("GetGCEEKSigningKey(%q): %v", reqType, err)
			}
			k, cert := checkGCEKey(t, keyType, res.Public, res.Cert, root)
			if i == 1 {
				if !k.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) || !bytes.Equal(res.Cert, certDER) {
					t.Fatalf("GetGCEEKSigningKey(%q): a second call returned another key or certificate", reqType)
				}
				break
			}
			pub, certDER = k, res.Cert
			switch {
			case cert != nil:
				t.Logf("GetGCEEKSigningKey(%q): %s key, certificate %q issued by %q", reqType, keyType, cert.Subject.CommonName, cert.Issuer.CommonName)
			case keyType == "rsa":
				t.Fatalf("GetGCEEKSigningKey(%q): no certificate (the harness wrote one to NV 0x01c10000)", reqType)
			default:
				t.Logf("GetGCEEKSigningKey(%q): %s key, no certificate (the harness writes none to NV 0x01c10002)", reqType, keyType)
			}
		}
		data := make([]byte, 48)
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := l.ctx()
		res, err := l.client.SignGCEEK(ctx, &verifier.SignGCEEKRequest{Data: data, KeyType: reqType})
		cancel()
		if err != nil {
			t.Fatalf("SignGCEEK(%q): %v", reqType, err)
		}
		if err := verifySignature(pub, data, res.Signed); err != nil {
			t.Fatalf("SignGCEEK(%q): the signature over SHA-256(data) does not verify with GetGCEEKSigningKey's key: %v", reqType, err)
		}
		if err := verifySignature(pub, append([]byte("x"), data...), res.Signed); err == nil {
			t.Fatalf("SignGCEEK(%q): the signature also verifies other data", reqType)
		}
		// An attestation key must not sign what could pass for a TPM attestation (TPM_GENERATED_VALUE).
		forged := append([]byte{0xff, 0x54, 0x43, 0x47}, data...)
		ctx, cancel = l.ctx()
		_, err = l.client.SignGCEEK(ctx, &verifier.SignGCEEKRequest{Data: forged, KeyType: reqType})
		cancel()
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("SignGCEEK(%q) of data starting with 0xff544347: got %v, want INVALID_ARGUMENT", reqType, err)
		}
	}
}
