//! Admin listener (under construction).
