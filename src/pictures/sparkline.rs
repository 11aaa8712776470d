//! A small line of one measure over time (a canary's success rate or p99 latency) with its
//! threshold as a dashed line, and the same facts in words.

/// Size of the picture in SVG units.
pub const WIDTH: f64 = 240.0;
pub const HEIGHT: f64 = 48.0;
const PADDING: f64 = 4.0;

/// Which side of the threshold is healthy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// e.g. success rate ≥ 99%.
    AtLeast(f64),
    /// e.g. p99 ≤ 500 ms.
    AtMost(f64),
}

/// What is measured and how its values read: `success rate`, `%`, two decimals.
pub struct Measure<'a> {
    pub name: &'a str,
    pub unit: &'a str,
    pub decimals: usize,
    pub limit: Limit,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sparkline {
    /// `x,y x,y …` for a polyline; empty without points.
    pub points: String,
    pub threshold_y: String,
    /// `breach` when the newest value breaks the threshold, else `holds`.
    pub class: &'static str,
    pub words: String,
}

impl Measure<'_> {
    fn value(&self, value: f64) -> String {
        format!("{value:.*}{}", self.decimals, self.unit)
    }

    fn holds(&self, value: f64) -> bool {
        match self.limit {
            Limit::AtLeast(limit) => value >= limit,
            Limit::AtMost(limit) => value <= limit,
        }
    }
}

/// `who` (`v2`) and `span` (`last 5 min`) name the line in words.
pub fn sparkline(measure: &Measure, who: &str, span: &str, points: &[(f64, f64)]) -> Sparkline {
    let threshold = match measure.limit {
        Limit::AtLeast(limit) | Limit::AtMost(limit) => limit,
    };
    let values = points.iter().map(|(_, value)| *value);
    let low = values.clone().fold(threshold, f64::min);
    let high = values.fold(threshold, f64::max);
    let spread = if high > low { high - low } else { 1.0 };
    let y = |value: f64| HEIGHT - PADDING - (value - low) / spread * (HEIGHT - 2.0 * PADDING);
    let (first, last) = (points.first().map_or(0.0, |p| p.0), points.last().map_or(0.0, |p| p.0));
    let x = |time: f64| if last > first { (time - first) / (last - first) * WIDTH } else { WIDTH };
    let mut drawn: Vec<String> =
        points.iter().map(|(time, value)| format!("{:.1},{:.1}", x(*time), y(*value))).collect();
    if let [only] = points {
        drawn.insert(0, format!("0.0,{:.1}", y(only.1)));
    }
    let limit_words = match measure.limit {
        Limit::AtLeast(limit) => format!("minimum {}", measure.value(limit)),
        Limit::AtMost(limit) => format!("maximum {}", measure.value(limit)),
    };
    let newest = points.last().map(|p| p.1);
    let (extreme_name, extreme) = match measure.limit {
        Limit::AtLeast(_) => ("lowest", points.iter().map(|p| p.1).reduce(f64::min)),
        Limit::AtMost(_) => ("highest", points.iter().map(|p| p.1).reduce(f64::max)),
    };
    let measured = match newest.zip(extreme) {
        Some((now, extreme)) => format!("now {}, {extreme_name} {}", measure.value(now), measure.value(extreme)),
        None => "nothing measured".to_owned(),
    };
    Sparkline {
        points: drawn.join(" "),
        threshold_y: format!("{:.1}", y(threshold)),
        class: if newest.is_none_or(|now| measure.holds(now)) { "holds" } else { "breach" },
        words: format!("{who} {}, {span}: {measured}; {limit_words}", measure.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUCCESS: Measure = Measure { name: "success rate", unit: "%", decimals: 2, limit: Limit::AtLeast(99.0) };
    const P99: Measure = Measure { name: "p99 latency", unit: " ms", decimals: 1, limit: Limit::AtMost(500.0) };

    #[test]
    fn a_line_spans_the_width_and_its_threshold_is_said_in_words() {
        let line = sparkline(&SUCCESS, "v2", "last 5 min", &[(0.0, 100.0), (10.0, 98.0), (20.0, 99.5)]);
        assert_eq!(line.points, "0.0,4.0 120.0,44.0 240.0,14.0");
        assert_eq!(line.threshold_y, "24.0");
        assert_eq!(line.class, "holds");
        assert_eq!(line.words, "v2 success rate, last 5 min: now 99.50%, lowest 98.00%; minimum 99.00%");
    }

    #[test]
    fn a_breach_now_is_marked_and_nothing_measured_says_so() {
        let line = sparkline(&P99, "v2", "last 5 min", &[(0.0, 20.0), (5.0, 700.0)]);
        assert_eq!(line.class, "breach");
        assert_eq!(line.words, "v2 p99 latency, last 5 min: now 700.0 ms, highest 700.0 ms; maximum 500.0 ms");
        let empty = sparkline(&P99, "v2", "last 5 min", &[]);
        assert_eq!((empty.points.as_str(), empty.class), ("", "holds"));
        assert_eq!(empty.words, "v2 p99 latency, last 5 min: nothing measured; maximum 500.0 ms");
        let one = sparkline(&P99, "v2", "last 5 min", &[(3.0, 500.0)]);
        assert_eq!(one.points.split(' ').count(), 2, "one point is drawn as a flat line");
    }
}
