//! tpmds-ear-interop: Veraison's `ear` crate (0.6.0) on the two sides of tpmds-verifier's EAR.
//!
//!   tpmds-ear-interop verify TOKEN_FILE JWK_FILE ES256|EdDSA
//!       Verifies the JWT with the public key (a JWK), lets the crate validate the claims, and
//!       prints what it read as one JSON document (exit 0); an error goes to stderr (exit 1).
//!   tpmds-ear-interop sign KEY_PEM ES256|EdDSA SUBMOD NONCE_B64URL
//!       Prints a JWT signed with the PKCS#8 PEM key: one submod SUBMOD, affirming hardware and
//!       instance-identity, the nonce, and an attester claim; exit 0.
use std::collections::BTreeMap;
use std::process::ExitCode;

use ear::{Algorithm, Appraisal, Ear, Extensions, Nonce, RawValue, TrustTier, VerifierID, EAR_PROFILE};
use serde_json::{json, Map, Value};

fn algorithm(name: &str) -> Result<Algorithm, String> {
    match name {
        "ES256" => Ok(Algorithm::ES256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        other => Err(format!("unsupported algorithm {other} (ES256 or EdDSA)")),
    }
}

fn tier(t: TrustTier) -> String {
    String::from(&t)
}

fn raw_json(v: &RawValue) -> Value {
    match v {
        RawValue::Null => Value::Null,
        RawValue::Integer(i) => json!(i),
        RawValue::Float(f) => json!(f),
        RawValue::String(s) => json!(s),
        RawValue::Bool(b) => json!(b),
        RawValue::Bytes(b) => json!(format!("bytes:{}", b.as_slice().len())),
        RawValue::Array(a) => Value::Array(a.iter().map(raw_json).collect()),
        RawValue::Map(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    RawValue::String(s) => s.clone(),
                    other => format!("{:?}", other),
                };
                out.insert(key, raw_json(v));
            }
            Value::Object(out)
        }
        RawValue::Tagged(t, v) => json!({ "tag": t, "value": raw_json(v) }),
    }
}

/// What the crate read, in a form the TypeScript test compares with `tpmds-verifier ear verify --json`.
fn describe(ear: &Ear) -> Value {
    let mut submods = Map::new();
    for (name, a) in &ear.submods {
        let mut vector = Map::new();
        for claim in a.trust_vector {
            if claim.is_set() {
                vector.insert(claim.tag().to_string(), json!(claim.value()));
            }
        }
        let attester: Map<String, Value> = a.attester_claims.iter().map(|(k, v)| (k.clone(), raw_json(v))).collect();
        let verifier: Map<String, Value> = a.verifier_claims.iter().map(|(k, v)| (k.clone(), raw_json(v))).collect();
        submods.insert(
            name.clone(),
            json!({
                "ear_status": tier(a.status),
                "ear_trustworthiness_vector": vector,
                "ear_appraisal_policy_ids": a.policy_ids,
                "ear_attester_claims": attester,
                "ear_verifier_claims": verifier,
            }),
        );
    }
    json!({
        "eat_profile": ear.profile,
        "iat": ear.iat,
        "exp": ear.exp,
        "ear_verifier_id": { "developer": ear.vid.developer, "build": ear.vid.build },
        "eat_nonce": ear.nonce.as_ref().map(|n| n.to_string()),
        "worst_submod_status": tier(ear.most_severe_submod_status()),
        "submods": submods,
    })
}

fn verify(args: &[String]) -> Result<Value, String> {
    let [token_file, jwk_file, alg] = args else {
        return Err("usage: verify TOKEN_FILE JWK_FILE ES256|EdDSA".into());
    };
    let token = std::fs::read_to_string(token_file).map_err(|e| format!("{token_file}: {e}"))?;
    let jwk = std::fs::read(jwk_file).map_err(|e| format!("{jwk_file}: {e}"))?;
    let ear = Ear::from_jwt_jwk(token.trim(), algorithm(alg)?, &jwk).map_err(|e| e.to_string())?;
    Ok(describe(&ear))
}

fn sign(args: &[String]) -> Result<String, String> {
    let [key_file, alg, submod, nonce] = args else {
        return Err("usage: sign KEY_PEM ES256|EdDSA SUBMOD NONCE_B64URL".into());
    };
    let key = std::fs::read(key_file).map_err(|e| format!("{key_file}: {e}"))?;
    let mut appraisal = Appraisal::new();
    appraisal.trust_vector.hardware.set(ear::claim::GENUINE_HARDWARE);
    appraisal.trust_vector.instance_identity.set(ear::claim::TRUSTWORTHY_INSTANCE);
    appraisal.update_status_from_trust_vector();
    appraisal.policy_ids = vec!["urn:example:rust-ear-interop".to_string()];
    appraisal
        .attester_claims
        .insert("tpm_ek_name".to_string(), RawValue::String("000b".to_string() + &"ab".repeat(32)));
    let mut ear = Ear {
        profile: EAR_PROFILE.to_string(),
        iat: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs() as i64,
        exp: None,
        vid: VerifierID { developer: "https://github.com/veraison/rust-ear".to_string(), build: "tpmds-ear-interop 0.1.0".to_string() },
        submods: BTreeMap::from([(submod.clone(), appraisal)]),
        nonce: Some(Nonce::try_from(nonce.as_str()).map_err(|e| e.to_string())?),
        status: None,
        raw_evidence: None,
        topology: None,
        extensions: Extensions::new(),
    };
    ear.update_status_from_trust_vector();
    ear.sign_jwt_pem(algorithm(alg)?, &key).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("verify") => verify(&args[1..]).map(|v| v.to_string()),
        Some("sign") => sign(&args[1..]),
        _ => Err("usage: tpmds-ear-interop verify TOKEN_FILE JWK_FILE ALG | sign KEY_PEM ALG SUBMOD NONCE".into()),
    };
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tpmds-ear-interop: {e}");
            ExitCode::FAILURE
        }
    }
}
