//! Session state changed by server-side code the SQL text does not show: a stored
//! function (`SELECT lock_it()` takes a user lock) and a trigger (`INSERT` sets a user
//! variable). Lexical classification cannot see either (a documented limit): the holder
//! that calls one discards the connection, as the docs say.

use integration_tests::reuse::*;

#[test]
fn async_stored_function_taking_a_user_lock_is_gone_once_the_holder_discards() {
    let (_server, db) = fresh_with("adv2_a_fn_lock", HIDDEN_STATE);
    let r = async_after_on(&db, "SELECT lock_it()", OWN_LOCK_CHECK, Leave::Discard);
    assert_clean(
        "async SELECT lock_it() (RETURN GET_LOCK(…)), discarded",
        r,
        Some("0"),
    );
}

#[test]
fn async_trigger_setting_a_user_variable_is_gone_once_the_holder_discards() {
    let (_server, db) = fresh_with("adv2_a_trigger", HIDDEN_STATE);
    let r = async_after_on(
        &db,
        "INSERT INTO t (v) VALUES (77)",
        "SELECT CAST(@last_v AS CHAR)",
        Leave::Discard,
    );
    assert_clean(
        "async INSERT with a trigger that sets @last_v, discarded",
        r,
        None,
    );
}
