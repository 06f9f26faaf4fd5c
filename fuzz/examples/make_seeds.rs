//! Writes the seed corpora in `fuzz/seeds/<target>/`, in each target's input format, from the
//! cases of the crate's tests (the test each group comes from is named beside it).
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```
//!
//! Tokens signed here use keys of this run, so only HMAC tokens (the shared test secret) and
//! DPoP proofs (which carry their key) still verify when the fuzzer reads them; the others seed
//! the parsers and the signature failure paths. Signed-mode seeds (header and claims for the
//! harness to sign) verify in every run.

use std::{fs, path::Path};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde_json::{json, Value};
use tower_par_fuzz::{
    jwt::{self, CROSS, FAPI2, RAW},
    CLIENT_ID, ISSUER, NOW_SECS, PAR_ENDPOINT, TOKEN_ENDPOINT,
};

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const URN: &str = "urn:ietf:params:oauth:request_uri:";

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let mut seeds = Seeds::default();
    form(&mut seeds);
    basic_credentials(&mut seeds);
    clients_file(&mut seeds);
    authorize_query(&mut seeds);
    par_request(&mut seeds);
    jwt_client_assertion(&mut seeds);
    jwt_request_object(&mut seeds);
    jwt_dpop_proof(&mut seeds);
    jwk_set(&mut seeds);
    for (target, files) in seeds.0 {
        let dir = root.join(target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        for (i, bytes) in files.iter().enumerate() {
            fs::write(dir.join(format!("{i:03}")), bytes)?;
        }
        println!("{target}: {} seeds", files.len());
    }
    Ok(())
}

#[derive(Default)]
struct Seeds(Vec<(&'static str, Vec<Vec<u8>>)>);

impl Seeds {
    fn add(&mut self, target: &'static str, bytes: impl Into<Vec<u8>>) {
        let bytes = bytes.into();
        match self.0.iter_mut().find(|(t, _)| *t == target) {
            Some((_, files)) if files.contains(&bytes) => {}
            Some((_, files)) => files.push(bytes),
            None => self.0.push((target, vec![bytes])),
        }
    }
}

/// src/params.rs tests; tests/par_endpoint.rs push bodies.
fn form(seeds: &mut Seeds) {
    let mut many: String = (0..30).map(|i| format!("p{i}=v&")).collect();
    many.push_str("p5=again");
    for input in [
        "state=a+b%20c",
        "state=%FF",
        "a=%",
        "a=%4",
        "a=%G1",
        "a=%4g",
        "%zz=1",
        "b=2&state=&a=1&&flag&=x",
        "state=%20",
        "scope=a&resource=x&resource=y",
        "scope=a&state=1&scope=b",
        "scope=a&sc%6Fpe=b",
        "p%20q=a%20b%2Bc&p%20q=https%3A%2F%2Fc.example%2Fcb%3Fx%3D1%26y%3D2%23f&p%20q=zo%C3%AB%20%E6%97%A5%E6%9C%AC%20%F0%9F%8E%89&p%20q=%2541~-._%2A&p%20q=%00",
        "response_type=code&client_id=web-app&redirect_uri=https%3A%2F%2Fclient.example.org%2Fcb&scope=openid&state=af0ifjsldkj&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        &many,
    ] {
        seeds.add("form", input);
    }
    seeds.add("form", b"state=\xff".to_vec());
}

/// src/client/authenticate.rs tests; tests/par_endpoint.rs.
fn basic_credentials(seeds: &mut Seeds) {
    let basic = |raw: &str| format!("Basic {}", STANDARD.encode(raw));
    for input in [
        basic("a%3Ab+c:p%2Bq%25r"),
        format!("bAsIc {}", STANDARD.encode("id:se:cret")),
        basic("web-app:web-app-secret"),
        basic("no-colon"),
        basic(":secret"),
        basic("a%ZZ:b"),
        basic("id:%FF"),
        "Bearer abc".into(),
        "Basic !!!".into(),
        "Basic".into(),
        "Basic  d2ViLWFwcDp3ZWItYXBwLXNlY3JldA== ".into(),
    ] {
        seeds.add("basic_credentials", input);
    }
}

/// examples/clients.json; src/client/static_clients.rs tests; tests/jwt.rs registrations.
fn clients_file(seeds: &mut Seeds) {
    seeds.add("clients_file", include_str!("../../examples/clients.json"));
    for entry in [
        r#"{"client_id":"a","auth_method":"none","surprise":1}"#,
        r#"{"client_id":"b","auth_method":"client_secret_post"}"#,
        r#"{"client_id":"c","auth_method":"none","client_secret":"s"}"#,
        r#"{"client_id":"d","auth_method":"none","par_lifetime_secs":0}"#,
        r#"{"client_id":"e","auth_method":"none","par_lifetime_secs":601}"#,
        r#"{"client_id":"e","auth_method":"none","par_lifetime_secs":600,"require_par":true}"#,
        r#"{"client_id":"f","auth_method":"magic"}"#,
        r#"{"client_id":"","auth_method":"none"}"#,
        r#"{"client_id":"k","auth_method":"private_key_jwt"}"#,
        r#"{"client_id":"h","auth_method":"client_secret_jwt","client_secret":"0123456789abcdef0123456789abcdef","require_signed_request_object":true}"#,
    ] {
        seeds.add("clients_file", format!(r#"{{"clients":[{entry}]}}"#));
    }
    seeds.add(
        "clients_file",
        r#"{"clients":[{"client_id":"x","auth_method":"none"},{"client_id":"x","auth_method":"none"}]}"#,
    );
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "2024-1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
    }]});
    let client = json!({"clients": [{
        "client_id": "pkj", "auth_method": "private_key_jwt", "jwks": jwks,
        "redirect_uris": ["https://pkj.example/cb"], "grant_types": ["authorization_code"],
        "require_signed_request_object": true
    }]});
    seeds.add("clients_file", client.to_string());
}

/// tests/authorize.rs, tests/consumption.rs, src/authorize.rs tests.
fn authorize_query(seeds: &mut Seeds) {
    let long_handle = format!("{URN}{}", "A".repeat(43));
    for (flags, input) in [
        (0u8, "client_id=web-app&request_uri=$uri".to_owned()),
        (1, "client_id=web-app&request_uri=$uri".into()),
        (2, "client_id=web-app&request_uri=$uri".into()),
        (3, "request_uri=$uri&client_id=web-app".into()),
        (
            0,
            "client_id=web-app&request_uri=$uri&scope=admin&redirect_uri=https%3A%2F%2Fevil"
                .into(),
        ),
        (0, "request_uri=$uri".into()),
        (0, "client_id=web-app&request_uri=$uri&request=eyJ".into()),
        (0, "client_id=web-app&request_uri=$uri&request_uri=$uri".into()),
        (1, "client_id=web-app&client_id=web-app&request_uri=$uri".into()),
        (0, "client_id=spa&request_uri=$uri".into()),
        (0, "client_id=nobody&request_uri=$uri".into()),
        (
            0,
            "client_id=par-required&response_type=code&redirect_uri=https%3A%2F%2Fstrict.example.org%2Fcb"
                .into(),
        ),
        (0, "client_id=web-app&response_type=code".into()),
        (0, "client_id=par-required&x=%ZZ".into()),
        (0, format!("client_id=web-app&request_uri={URN}short")),
        (0, format!("client_id=web-app&request_uri={long_handle}")),
        (
            1,
            "client_id=web%2Dapp&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3A$uri"
                .into(),
        ),
        (0, long_handle.clone()),
        (0, format!("{long_handle}A")),
        (0, "$uri".into()),
    ] {
        let mut bytes = vec![flags];
        bytes.extend_from_slice(input.as_bytes());
        seeds.add("authorize_query", bytes);
    }
}

/// tests/par_endpoint.rs, tests/jwt.rs: pushes with every authentication method, DPoP, and the
/// refusals of the PAR endpoint.
fn par_request(seeds: &mut Seeds) {
    let form = "application/x-www-form-urlencoded";
    let basic = |raw: &str| format!("Basic {}", STANDARD.encode(raw));
    let web = basic("web-app:web-app-secret");
    let code = format!(
        "response_type=code&redirect_uri=https%3A%2F%2Fclient.example.org%2Fcb&scope=openid&state=af0ifjsldkj&code_challenge={CHALLENGE}&code_challenge_method=S256"
    );
    let now = NOW_SECS as i64;
    let assertion = token_of(&signed(
        5,
        &header(5, &json!({})),
        &json!({"iss": "jwt-app", "sub": "jwt-app", "aud": ISSUER, "iat": now, "exp": now + 60, "jti": "par-seed"}),
    ));
    let dpop = token_of(&signed(
        0,
        &header(0, &json!({"typ": "dpop+jwt", "kid": null, "jwk": "$jwk"})),
        &json!({"htm": "POST", "htu": PAR_ENDPOINT, "iat": now, "jti": "par-dpop"}),
    ));
    let cases: Vec<[String; 5]> = vec![
        [form.into(), String::new(), web.clone(), String::new(), code.clone()],
        [form.into(), String::new(), web.clone(), dpop.clone(), code.clone()],
        [format!("{form}; charset=UTF-8"), String::new(), web.clone(), String::new(), format!("{code}&resource=https%3A%2F%2Frs1&resource=https%3A%2F%2Frs2&claims=%7B%7D")],
        [form.into(), String::new(), String::new(), String::new(),
         "client_id=post-app&client_secret=post-app-secret&response_type=code&redirect_uri=https%3A%2F%2Fpost.example.org%2Fcb2".into()],
        [form.into(), String::new(), String::new(), String::new(),
         format!("client_id=spa&response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcallback&code_challenge={CHALLENGE}&code_challenge_method=S256")],
        [form.into(), String::new(), String::new(), String::new(),
         format!("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}&response_type=code&redirect_uri=https%3A%2F%2Fjwt.example.org%2Fcb")],
        [form.into(), String::new(), basic("implicit-app:implicit-app-secret"), String::new(), "response_type=token&scope=openid".into()],
        [form.into(), "client_secret=x".into(), web.clone(), String::new(), code.clone()],
        [form.into(), "scope=admin".into(), web.clone(), String::new(), code.clone()],
        ["application/json".into(), String::new(), web.clone(), String::new(), "{}".into()],
        [form.into(), String::new(), web.clone(), String::new(), format!("{code}&request_uri=urn%3Ax")],
        [form.into(), String::new(), web.clone(), String::new(), format!("{code}&client_secret=web-app-secret")],
        [form.into(), String::new(), basic("web-app:wrong"), String::new(), code.clone()],
        [form.into(), String::new(), "Bearer x".into(), String::new(), code.clone()],
        [form.into(), String::new(), web.clone(), String::new(), format!("{code}&state=2")],
        [form.into(), String::new(), web.clone(), String::new(), "response_type=code%20id_token&code_challenge=short".into()],
        [form.into(), String::new(), web.clone(), "not.a.jwt".into(), code.clone()],
        [form.into(), String::new(), web.clone(), String::new(), format!("{code}&request=eyJ.eyJ.x")],
    ];
    for fields in cases {
        seeds.add("par_request", fields.join("\0"));
    }
}

/// One signed-mode input: the harness signs `header` and `claims` with signer `selector & 7`.
fn signed(selector: u8, header: &Value, claims: &Value) -> Vec<u8> {
    let mut bytes = vec![selector];
    bytes.extend_from_slice(header.to_string().as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(claims.to_string().as_bytes());
    bytes
}

/// One raw-mode input: a token as it is.
fn raw(selector: u8, token: &str) -> Vec<u8> {
    let mut bytes = vec![selector | RAW];
    bytes.extend_from_slice(token.as_bytes());
    bytes
}

/// The header a signer writes by default: its `alg` and the `kid` of its registered key.
fn header(selector: u8, extra: &Value) -> Value {
    let (alg, kid) = jwt::SIGNERS[usize::from(selector & 7)];
    let mut header = json!({ "alg": alg });
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    merge(&mut header, extra);
    header
}

fn merge(base: &mut Value, extra: &Value) {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (name, value) in extra {
            if value.is_null() {
                base.remove(name);
            } else {
                base.insert(name.clone(), value.clone());
            }
        }
    }
}

fn with(base: &Value, extra: Value) -> Value {
    let mut out = base.clone();
    merge(&mut out, &extra);
    out
}

/// Every signer with `claims` (plain, under FAPI 2.0, and verified with the wrong kind of
/// credential), then each claim variant and each header variant, signed by the given signers in
/// turn.
fn signed_cases(
    seeds: &mut Seeds,
    target: &'static str,
    claims: &Value,
    (claim_variants, claim_signers): (&[Value], &[u8]),
    (header_variants, header_signers): (&[Value], &[u8]),
) {
    for selector in 0..8u8 {
        let plain = header(selector, &json!({}));
        for flags in [0, FAPI2, CROSS] {
            seeds.add(target, signed(selector | flags, &plain, claims));
        }
    }
    for (i, extra) in claim_variants.iter().enumerate() {
        let selector = claim_signers[i % claim_signers.len()];
        let claims = with(claims, extra.clone());
        seeds.add(
            target,
            signed(selector, &header(selector, &json!({})), &claims),
        );
    }
    for (i, extra) in header_variants.iter().enumerate() {
        let selector = header_signers[i % header_signers.len()];
        seeds.add(target, signed(selector, &header(selector, extra), claims));
    }
}

/// The token the harness makes of a signed-mode input (keys of this run).
fn token_of(input: &[u8]) -> String {
    jwt::case(input).expect("a signed-mode input").token
}

/// Tokens that no key signs: from the header pre-check tests of src/jwt/tests.rs.
fn malformed_tokens() -> Vec<String> {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    vec![
        String::new(),
        "a.b".into(),
        "a.b.c.d.e".into(),
        "eyJ.eyJ.sig".into(),
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none"})),
            b64(&json!({"iss": CLIENT_ID}))
        ),
        format!("{}.e30.AA", b64(&json!({"alg": "ES256", "crit": ["b64"]}))),
        format!("{}.e30.AA", b64(&json!({"alg": 1}))),
        "eyJhbGciOiJFUzI1NiIsImFsZyI6IkhTMjU2In0.e30.AA".into(),
    ]
}

/// src/jwt/tests.rs `assertion_*`; tests/jwt.rs client assertion cases.
fn jwt_client_assertion(seeds: &mut Seeds) {
    let t = "jwt_client_assertion";
    let now = NOW_SECS as i64;
    let claims = json!({
        "iss": CLIENT_ID, "sub": CLIENT_ID, "aud": ISSUER,
        "iat": now, "exp": now + 60, "jti": "jti-1",
    });
    let variants = [
        json!({}),
        json!({"aud": PAR_ENDPOINT}),
        json!({"aud": TOKEN_ENDPOINT}),
        json!({"aud": [ISSUER, "https://other"]}),
        json!({"aud": "https://other"}),
        json!({"aud": [1]}),
        json!({"aud": null}),
        json!({"iss": "someone"}),
        json!({"sub": null}),
        json!({"sub": 7}),
        json!({"exp": now - 1}),
        json!({"exp": null}),
        json!({"exp": now + 400}),
        json!({"exp": "soon"}),
        json!({"exp": 1e300}),
        json!({"exp": -1}),
        json!({"iat": now + 30}),
        json!({"iat": now - 400}),
        json!({"nbf": now + 30}),
        json!({"nbf": now - 5}),
        json!({"jti": ""}),
        json!({"jti": null}),
        json!({"jti": "x".repeat(300)}),
        json!({"exp": now as f64 + 60.5, "iat": now as f64 - 0.25}),
    ];
    let headers = [
        json!({}),
        json!({"typ": "JWT"}),
        json!({"typ": "dpop+jwt"}),
        json!({"typ": "application/oauth-authz-req+jwt"}),
        json!({"kid": null}),
        json!({"kid": "unknown"}),
        json!({"kid": 5}),
        json!({"kid": "es384"}),
        json!({"crit": ["exp"]}),
        json!({"alg": "none"}),
        json!({"alg": "HS256"}),
        json!({"alg": "RS512"}),
    ];
    signed_cases(
        seeds,
        t,
        &claims,
        (&variants, &[0, 5, 2]),
        (&headers, &[0, 5, 3]),
    );
    let fapi_claims = with(&claims, json!({"aud": [ISSUER]}));
    seeds.add(t, signed(FAPI2, &header(0, &json!({})), &fapi_claims));
    // The header and claims of `sign_text`: duplicate member names are refused.
    let mut dup = vec![5u8];
    dup.extend_from_slice(br#"{"alg":"HS256","alg":"HS256"}"#);
    dup.push(0);
    dup.extend_from_slice(
        format!(r#"{{"iss":"{CLIENT_ID}","iss":"{CLIENT_ID}","sub":"{CLIENT_ID}","aud":"{ISSUER}","exp":{},"jti":"d"}}"#, now + 60)
            .as_bytes(),
    );
    seeds.add(t, dup);
    // Raw tokens: HMAC ones verify in every run (shared secret), the rest exercise the parser.
    let hs = token_of(&signed(5, &header(5, &json!({})), &claims));
    seeds.add(t, raw(5, &hs));
    seeds.add(
        t,
        raw(0, &token_of(&signed(0, &header(0, &json!({})), &claims))),
    );
    for token in malformed_tokens() {
        seeds.add(t, raw(0, &token));
    }
}

/// src/jwt/tests.rs `request_object_*`; tests/jwt.rs request object pushes.
fn jwt_request_object(seeds: &mut Seeds) {
    let t = "jwt_request_object";
    let now = NOW_SECS as i64;
    let claims = json!({
        "iss": CLIENT_ID, "aud": ISSUER, "client_id": CLIENT_ID,
        "iat": now, "nbf": now, "exp": now + 300, "jti": "ro-1",
        "response_type": "code", "redirect_uri": "https://client.example.org/cb",
        "scope": "openid", "state": "s t", "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    });
    let variants = [
        json!({}),
        json!({"resource": ["https://rs1.example", "https://rs2.example"]}),
        json!({"resource": ["https://rs1.example", ""]}),
        json!({"resource": "https://rs.example"}),
        json!({"claims": {"id_token": {"acr": {"essential": true}}}, "max_age": 300, "flag": true}),
        json!({"authorization_details": [{"type": "payment", "amount": 1.5}]}),
        json!({"state": null, "nonce": ""}),
        json!({"request_uri": "urn:x"}),
        json!({"request": "eyJ"}),
        json!({"client_id": "other"}),
        json!({"client_id": null}),
        json!({"iss": null}),
        json!({"aud": PAR_ENDPOINT}),
        json!({"aud": [ISSUER, "x"]}),
        json!({"aud": 3}),
        json!({"exp": now}),
        json!({"exp": null, "nbf": null}),
        json!({"nbf": now + 8}),
        json!({"nbf": now + 70}),
        json!({"nbf": now - 4200}),
        json!({"exp": now + 4200}),
        json!({"iat": now + 20}),
        json!({"exp": "tomorrow"}),
    ];
    let headers = [
        json!({"typ": "oauth-authz-req+jwt"}),
        json!({"typ": "application/oauth-authz-req+jwt"}),
        json!({"typ": "JWT"}),
        json!({"typ": "dpop+jwt"}),
        json!({"typ": ["jwt"]}),
        json!({"kid": null}),
        json!({"alg": "none"}),
    ];
    signed_cases(
        seeds,
        t,
        &claims,
        (&variants, &[0, 6, 4]),
        (&headers, &[2, 5]),
    );
    let hs = token_of(&signed(7, &header(7, &json!({})), &claims));
    seeds.add(t, raw(7, &hs));
    for token in malformed_tokens() {
        seeds.add(t, raw(0, &token));
    }
}

/// src/jwt/tests.rs `dpop_*`; tests/jwt.rs DPoP pushes.
fn jwt_dpop_proof(seeds: &mut Seeds) {
    let t = "jwt_dpop_proof";
    let now = NOW_SECS as i64;
    let claims = json!({"htm": "POST", "htu": PAR_ENDPOINT, "iat": now, "jti": "dpop-1"});
    let proof_header = |selector: u8, extra: Value| {
        let mut header = header(selector, &json!({"typ": "dpop+jwt", "kid": null}));
        // The harness puts the signing key's public JWK where this placeholder stands.
        header["jwk"] = json!("$jwk");
        merge(&mut header, &extra);
        header
    };
    let variants = [
        json!({}),
        json!({"htm": "GET"}),
        json!({"htu": "HTTPS://AS.EXAMPLE.COM:443/as/par?x=1#f"}),
        json!({"htu": "https://as.example.com/as/par/"}),
        json!({"htu": "https://as.example.com:8443/as/par"}),
        json!({"htu": "as.example.com/as/par"}),
        json!({"iat": now - 120}),
        json!({"iat": now + 120}),
        json!({"iat": null}),
        json!({"jti": null}),
        json!({"htm": 1}),
        json!({"ath": "x"}),
    ];
    let headers = [
        json!({"typ": "JWT"}),
        json!({"typ": null}),
        json!({"typ": "application/dpop+jwt"}),
        json!({"jwk": null}),
        json!({"jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
        json!({"jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}}),
        json!({"jwk": "not an object"}),
        json!({"alg": "HS256"}),
    ];
    for selector in 0..5u8 {
        seeds.add(
            t,
            signed(selector, &proof_header(selector, json!({})), &claims),
        );
    }
    for (i, extra) in variants.iter().enumerate() {
        let selector = [0, 2, 1][i % 3];
        seeds.add(
            t,
            signed(
                selector,
                &proof_header(selector, json!({})),
                &with(&claims, extra.clone()),
            ),
        );
    }
    for extra in headers {
        seeds.add(t, signed(0, &proof_header(0, extra), &claims));
    }
    // Foreign keys that parse: the signature check runs with them.
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let off_curve =
        json!({"kty": "EC", "crv": "P-256", "x": b64(vec![1; 32]), "y": b64(vec![2; 32])});
    let odd_modulus = json!({"kty": "RSA", "e": "AQAB", "n": b64(vec![0xC5; 256])});
    let weak_ed25519 = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(vec![0; 32])});
    for (selector, jwk) in [(0, off_curve), (3, odd_modulus), (2, weak_ed25519)] {
        seeds.add(
            t,
            signed(
                selector,
                &proof_header(selector, json!({"jwk": jwk})),
                &claims,
            ),
        );
    }
    // A proof carries its key, so a raw proof made here verifies in every run.
    seeds.add(
        t,
        raw(
            0,
            &token_of(&signed(0, &proof_header(0, json!({})), &claims)),
        ),
    );
    seeds.add(
        t,
        raw(
            2,
            &token_of(&signed(2, &proof_header(2, json!({})), &claims)),
        ),
    );
    for token in malformed_tokens() {
        seeds.add(t, raw(0, &token));
    }
}

/// src/jwt/tests.rs `jwks_*`.
fn jwk_set(seeds: &mut Seeds) {
    let t = "jwk_set";
    let ec = json!({
        "kty": "EC", "crv": "P-256", "kid": "2024-1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
    });
    let fake_rsa = |kid: &str, bytes: usize| {
        json!({"kty": "RSA", "kid": kid, "e": "AQAB",
               "n": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(vec![0xC5; bytes])})
    };
    let sets = [
        json!({"keys": [ec]}),
        json!({"keys": [with(&ec, json!({"alg": "ES256", "use": "sig", "key_ops": ["verify"]}))]}),
        json!({"keys": [with(&ec, json!({"alg": "RS256"}))]}),
        json!({"keys": [with(&ec, json!({"alg": "ES512"}))]}),
        json!({"keys": [with(&ec, json!({"d": "AQAB"}))]}),
        json!({"keys": [with(&ec, json!({"use": "enc", "d": "AQAB"}))]}),
        json!({"keys": [with(&ec, json!({"kid": null}))]}),
        json!({"keys": [with(&ec, json!({"kid": ""}))]}),
        json!({"keys": [ec, ec]}),
        json!({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}),
        json!({"keys": [{"kty": "EC", "kid": "a", "crv": "P-521", "x": "AA", "y": "AA"}]}),
        json!({"keys": [{"kty": "OKP", "kid": "a", "crv": "X25519", "x": "AA", "use": "enc"}, ec]}),
        json!({"keys": [{"kty": "OKP", "kid": "a", "crv": "Ed25519",
                         "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}),
        json!({"keys": [{"kty": "RSA", "kid": "a", "n": "not base64!", "e": "AQAB"}]}),
        json!({"keys": [fake_rsa("small", 128)]}),
        json!({"keys": [fake_rsa("ok", 256)]}),
        json!({"keys": [fake_rsa("big", 1024)]}),
        json!({"keys": [with(&fake_rsa("e", 256), json!({"e": "AAE"}))]}),
        json!({"keys": []}),
        json!({"keys": ec}),
        json!([ec]),
        json!("x"),
    ];
    for set in sets {
        seeds.add(t, set.to_string());
    }
}
