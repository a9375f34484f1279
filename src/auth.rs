//! Bearer-token authentication (placeholder until the HS256 verifier lands: rejects everything).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Malformed,
}

impl AuthError {
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Missing => "Not authenticated",
            AuthError::Malformed => "Malformed token",
        }
    }
    pub fn token_presented(self) -> bool {
        self != AuthError::Missing
    }
}

pub struct Verifier;

impl Verifier {
    pub fn new(
        _: &[u8],
        _: Option<&[u8]>,
        _: u64,
        _: Option<String>,
        _: Option<String>,
    ) -> Verifier {
        Verifier
    }
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        _now: f64,
    ) -> Result<UserId, AuthError> {
        match authorization {
            None => Err(AuthError::Missing),
            Some(_) => Err(AuthError::Malformed),
        }
    }
}
