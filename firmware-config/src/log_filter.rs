//! Checks `log.level`: a level, or a comma-separated list of directives in
//! the `tracing_subscriber::EnvFilter` form `level` or `target=level`.
//! Stricter than EnvFilter on purpose: a bare word must be a level, so a
//! misspelt level is an error rather than a filter for a target of that name.

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

fn is_level(word: &str) -> bool {
    LEVELS.iter().any(|level| level.eq_ignore_ascii_case(word))
}

fn is_target(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
}

/// `Err(reason)` when `spec` is not a level or directive list.
pub(crate) fn check(spec: &str) -> Result<(), String> {
    let directives: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if directives.is_empty() {
        return Err(
            "empty; expected a level (error, warn, info, debug, trace, off) \
             or directives like \"info,cairn_http=debug\""
                .to_string(),
        );
    }
    for directive in directives {
        let ok = match directive.split_once('=') {
            Some((target, level)) => is_target(target.trim()) && is_level(level.trim()),
            None => is_level(directive),
        };
        if !ok {
            return Err(format!(
                "invalid directive {directive:?}; expected a level (error, warn, info, debug, \
                 trace, off) or target=level, as in \"info,cairn_http=debug\""
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directive_lists_pass() {
        for spec in [
            "info",
            "TRACE",
            "off",
            "info,cairn_http=debug",
            "warn, cairn_shards::runtime=trace,",
        ] {
            assert_eq!(check(spec), Ok(()), "{spec}");
        }
    }

    #[test]
    fn typos_and_garbage_fail_with_the_directive_named() {
        for (spec, named) in [
            ("verbose", "\"verbose\""),
            ("info,cairn_http=loud", "\"cairn_http=loud\""),
            ("=debug", "\"=debug\""),
            ("a b=info", "\"a b=info\""),
        ] {
            let reason = check(spec).expect_err(spec);
            assert!(reason.contains(named), "{spec}: {reason}");
        }
        assert!(check(" , ").is_err());
    }
}
