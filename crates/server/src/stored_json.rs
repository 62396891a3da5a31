//! What the database accepts in a `JSON` column, checked before it is sent.
//!
//! In MariaDB a `JSON` column is `LONGTEXT` with a `JSON_VALID` check constraint, and
//! `JSON_VALID` refuses documents with more than [`MAX_DEPTH`] nested arrays and objects
//! (error 4025, "CONSTRAINT … failed"). serde_json parses up to 127 levels, so a client
//! can send a value the database would refuse: it is checked here, with a message that
//! says what is wrong. (Should the database refuse something else, [`crate::error`]
//! still answers 422, never 500.)

use serde_json::Value;

use crate::error::ApiError;

/// The most arrays and objects nested in one another that a stored JSON value may have
/// (`[[1]]` has 2; a scalar has 0). MariaDB's `JSON_VALID` refuses 32.
pub const MAX_DEPTH: usize = 31;

/// How many arrays and objects are nested in one another in `value`, at the deepest.
///
/// Iterative: the depth of the input does not matter to the stack.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0_usize)];
    while let Some((value, above)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        let here = above + 1;
        deepest = deepest.max(here);
        stack.extend(children.map(|child| (child, here)));
    }
    deepest
}

/// Checks that `value` (the request's field `field`) can be stored in a `JSON` column.
///
/// # Errors
///
/// [`ApiError::Invalid`] (422) naming `field` and the limit when it is nested deeper
/// than [`MAX_DEPTH`].
pub fn check(field: &str, value: &Value) -> Result<(), ApiError> {
    let depth = depth(value);
    if depth > MAX_DEPTH {
        return Err(ApiError::Invalid(format!(
            "{field} nests arrays and objects {depth} levels deep; at most {MAX_DEPTH} are accepted"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn depth_counts_nested_arrays_and_objects() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!("[[[")), 0);
        assert_eq!(depth(&json!([])), 1);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!([1, [2, [3]], {"a": {}}])), 3);
        assert_eq!(depth(&json!({"a": [{"b": [[]]}], "c": 1})), 5);
    }

    #[test]
    fn thirty_one_levels_pass_and_thirty_two_are_refused() {
        let nest = |n: usize| (0..n).fold(json!(1), |inner, _| json!([inner]));
        assert!(check("state", &nest(MAX_DEPTH)).is_ok());
        let err = check("state", &nest(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert!(err.to_string().starts_with("state nests"), "{err}");
    }
}
