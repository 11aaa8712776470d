//! A canary's step plan as a strip: one cell per step (done, current, still to come) with a
//! bar underneath filled to the weight the canary gets now.
use crate::policy::canary::{Canary, CanaryState};

use super::bars::BAR_WIDTH;

/// One step of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCell {
    pub x: u32,
    pub width: u32,
    pub label_x: u32,
    /// `10%`.
    pub label: String,
    /// `step-done`, `step-current` or `step-next` (app.css).
    pub class: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepStrip {
    pub cells: Vec<StepCell>,
    /// Width of the weight bar's filled part, in the same units as the cells.
    pub weight_width: u32,
    /// The plan and where it stands, in words, for `aria-label` and `<title>`.
    pub words: String,
}

impl StepStrip {
    /// `canary_name` is how the page names the canary's subset.
    pub fn of(canary: &Canary, canary_name: &str) -> StepStrip {
        let count = canary.steps.len().max(1) as u32;
        let cells = canary
            .steps
            .iter()
            .enumerate()
            .map(|(index, weight)| {
                let (x, width) = (index as u32 * BAR_WIDTH / count, BAR_WIDTH / count);
                StepCell {
                    x,
                    width,
                    label_x: x + width / 2,
                    label: format!("{weight}%"),
                    class: cell_class(canary, index),
                }
            })
            .collect();
        StepStrip { cells, weight_width: canary.weight() * BAR_WIDTH / 100, words: words(canary, canary_name) }
    }
}

fn cell_class(canary: &Canary, index: usize) -> &'static str {
    match canary.state {
        CanaryState::Finished => "step-done",
        CanaryState::Aborted => "step-next",
        CanaryState::Progressing | CanaryState::Paused if index < canary.step => "step-done",
        CanaryState::Progressing | CanaryState::Paused if index == canary.step => "step-current",
        _ => "step-next",
    }
}

fn words(canary: &Canary, canary_name: &str) -> String {
    let plan: Vec<String> = canary.steps.iter().map(|w| format!("{w}%")).collect();
    let position = format!("step {} of {}", canary.step + 1, canary.steps.len());
    let now = format!("{canary_name} gets {}%", canary.weight());
    let state = match canary.state {
        CanaryState::Finished => format!("finished, {now}"),
        CanaryState::Aborted => format!("aborted at {position}, {now}"),
        CanaryState::Progressing | CanaryState::Paused => format!("{position}, {now} ({})", canary.state_name()),
    };
    format!("canary steps {}: {state}", plan.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(step: usize, state: CanaryState) -> Canary {
        Canary {
            stable: "version-v1".into(),
            canary: "version-v2".into(),
            steps: vec![10, 25, 100],
            step,
            state,
            analysis: None,
        }
    }

    #[test]
    fn the_current_step_is_marked_and_said_in_words() {
        let strip = StepStrip::of(&canary(1, CanaryState::Progressing), "v2");
        let classes: Vec<&str> = strip.cells.iter().map(|c| c.class).collect();
        assert_eq!(classes, ["step-done", "step-current", "step-next"]);
        assert_eq!(strip.words, "canary steps 10%, 25%, 100%: step 2 of 3, v2 gets 25% (progressing)");
        assert_eq!(strip.weight_width, 150);
        assert_eq!((strip.cells[1].x, strip.cells[1].width, strip.cells[1].label_x), (200, 200, 300));
    }

    #[test]
    fn finished_and_aborted_canaries_say_so() {
        let finished = StepStrip::of(&canary(2, CanaryState::Finished), "v2");
        assert!(finished.cells.iter().all(|c| c.class == "step-done"));
        assert_eq!(finished.words, "canary steps 10%, 25%, 100%: finished, v2 gets 100%");
        let aborted = StepStrip::of(&canary(0, CanaryState::Aborted), "v2");
        assert_eq!(aborted.weight_width, 0);
        assert_eq!(aborted.words, "canary steps 10%, 25%, 100%: aborted at step 1 of 3, v2 gets 0%");
    }
}
