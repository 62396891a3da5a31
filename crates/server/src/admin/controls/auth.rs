//! Who may use the control routes: the bearer of `ADMIN_TOKEN`.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use super::reply::Refusal;
use crate::secret::AdminToken;

/// Checks `headers` for `Authorization: Bearer <ADMIN_TOKEN>`.
///
/// # Errors
///
/// [`Refusal::Disabled`] when no `ADMIN_TOKEN` is set (whatever the request carries),
/// [`Refusal::Unauthorized`] when the header is missing, not a bearer token, or not
/// this token. The token is compared in constant time and never logged.
pub(super) fn authorize(token: Option<&AdminToken>, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(token) = token else {
        return Err(Refusal::Disabled);
    };
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match presented {
        Some(presented) if token.matches(presented) => Ok(()),
        Some(_) => Err(Refusal::Unauthorized("the bearer token is not ADMIN_TOKEN")),
        None => Err(Refusal::Unauthorized(
            "send the admin token as `Authorization: Bearer <ADMIN_TOKEN>`",
        )),
    }
}

/// The token of `Bearer <token>` (the scheme in any case, as RFC 9110 has it).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const TOKEN: &str = "admin-0123456789abcdef";

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn only_the_bearer_of_the_admin_token_is_authorized() {
        let token = AdminToken::new(TOKEN).unwrap();
        let t = Some(&token);
        assert!(authorize(t, &with(&format!("Bearer {TOKEN}"))).is_ok());
        assert!(authorize(t, &with(&format!("bearer {TOKEN}"))).is_ok());
        for refused in [
            format!("Basic {TOKEN}"),
            format!("Bearer {TOKEN}x"),
            "Bearer ".to_owned(),
            TOKEN.to_owned(),
        ] {
            let got = authorize(t, &with(&refused));
            assert!(matches!(got, Err(Refusal::Unauthorized(_))), "{refused}");
        }
        assert!(matches!(
            authorize(t, &HeaderMap::new()),
            Err(Refusal::Unauthorized(_))
        ));
    }

    #[test]
    fn without_an_admin_token_every_request_is_refused_as_disabled() {
        let right_looking = with(&format!("Bearer {TOKEN}"));
        assert!(matches!(
            authorize(None, &right_looking),
            Err(Refusal::Disabled)
        ));
    }
}
