//! The image's `created` time: `SOURCE_DATE_EPOCH` when set (reproducible builds' convention),
//! else lifecycle's normalized 1980-01-01T00:00:01Z, as RFC 3339 UTC text.

use crate::normalize::NORMALIZED_MTIME;

/// `created` from `SOURCE_DATE_EPOCH` (a decimal Unix time), else lifecycle's 1980 date.
///
/// # Errors
/// A value that is not a non-negative integer.
pub fn created_from_env(value: Option<&str>) -> std::result::Result<i64, String> {
    match value {
        None => Ok(NORMALIZED_MTIME),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|&t| t >= 0)
            .ok_or_else(|| format!("SOURCE_DATE_EPOCH={v:?} is not a Unix time")),
    }
}

/// RFC 3339 UTC text of a Unix time.
pub fn rfc3339(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_is_source_date_epoch_or_1980() {
        assert_eq!(
            rfc3339(created_from_env(None).unwrap()),
            "1980-01-01T00:00:01Z"
        );
        assert_eq!(
            rfc3339(created_from_env(Some("0")).unwrap()),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert!(created_from_env(Some("yesterday")).is_err());
        assert!(created_from_env(Some("-5")).is_err());
    }
}
