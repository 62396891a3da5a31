//! I3 on the async side: statements that change session or transaction state, run
//! through the helpers, never reach the next holder (the pool closes the connection).
//! Each runs a statement, returns the connection, checks out again on a budget of 1 and
//! asks the server what the next holder inherited.
//!
//! `forms`: the forms a statement can take (executable comments, `SET STATEMENT … FOR`,
//! compound statements, quoted built-in names, comments before a parenthesis) and the
//! classifier that must see through each; `returns`: what the return path does with
//! results, helpers' state, raw access and a killed connection; `hidden`: state the
//! SQL text cannot show, gone once the holder discards.

mod forms;
mod hidden;
mod returns;
