//! Where the service graph's boxes go: one block per service (its box, then its versions to
//! the right, room for the weight labels between), blocks in columns by call depth, services
//! no known call reaches in a grid below. Pure geometry in SVG units.

pub const MARGIN: i32 = 12;
pub const SERVICE_WIDTH: i32 = 128;
pub const SERVICE_HEIGHT: i32 = 32;
/// Room between a service and its versions for labels like `everyone else: 10%`.
pub const LABEL_GAP: i32 = 146;
pub const VERSION_WIDTH: i32 = 84;
pub const VERSION_HEIGHT: i32 = 26;
/// Between columns of blocks: where the call edges run.
pub const COLUMN_GAP: i32 = 60;
pub const BLOCK_WIDTH: i32 = SERVICE_WIDTH + LABEL_GAP + VERSION_WIDTH;
/// One line of an edge label.
pub const LINE_HEIGHT: i32 = 14;
const ROW_GAP: i32 = 20;
/// Unconnected services fill at least this many columns before wrapping.
const MIN_GRID_COLUMNS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

impl Rect {
    pub fn right(&self) -> i32 {
        self.x + self.width
    }

    pub fn middle(&self) -> i32 {
        self.y + self.height / 2
    }
}

/// A service's boxes once placed.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub service: Rect,
    pub versions: Vec<Rect>,
}

/// The placed services (indexed like `label_lines`) and the picture's size.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub placed: Vec<Placed>,
    pub width: i32,
    pub height: i32,
}

/// Places services: `layers[d]` lists the services at call depth `d`, `loose` the others;
/// `label_lines[s][v]` is how many label lines the edge to version `v` of service `s` has.
pub fn place(layers: &[Vec<usize>], loose: &[usize], label_lines: &[Vec<usize>]) -> Layout {
    let mut placed =
        vec![Placed { service: Rect { x: 0, y: 0, width: 0, height: 0 }, versions: Vec::new() }; label_lines.len()];
    let mut bottom = MARGIN;
    for (column, layer) in layers.iter().enumerate() {
        let mut y = MARGIN;
        for &service in layer {
            placed[service] = block(column_x(column), y, &label_lines[service]);
            y += block_height(&label_lines[service]) + ROW_GAP;
        }
        bottom = bottom.max(y);
    }
    let grid_columns = MIN_GRID_COLUMNS.max(layers.len()).min(loose.len().max(1));
    let mut y = if layers.is_empty() { MARGIN } else { bottom + ROW_GAP };
    for row in loose.chunks(grid_columns) {
        for (column, &service) in row.iter().enumerate() {
            placed[service] = block(column_x(column), y, &label_lines[service]);
        }
        y += row.iter().map(|&s| block_height(&label_lines[s])).max().unwrap_or(0) + ROW_GAP;
    }
    let columns = layers.len().max(if loose.is_empty() { 0 } else { grid_columns }).max(1);
    Layout { placed, width: column_x(columns) - COLUMN_GAP + MARGIN, height: y.max(bottom) - ROW_GAP + MARGIN }
}

fn column_x(column: usize) -> i32 {
    MARGIN + i32::try_from(column).unwrap_or(i32::MAX / 2) * (BLOCK_WIDTH + COLUMN_GAP)
}

/// A version's row: tall enough for its label lines above the edge's end.
fn row_height(lines: usize) -> i32 {
    let lines = i32::try_from(lines).unwrap_or(1);
    (lines * LINE_HEIGHT + 18).max(38)
}

fn block_height(label_lines: &[usize]) -> i32 {
    let rows: i32 = label_lines.iter().map(|&lines| row_height(lines)).sum();
    rows.max(SERVICE_HEIGHT + 6)
}

/// A service box centred on its column of versions, each version at the bottom of its row
/// so that its label lines sit above the edge's end.
fn block(x: i32, y: i32, label_lines: &[usize]) -> Placed {
    let height = block_height(label_lines);
    let service = Rect { x, y: y + (height - SERVICE_HEIGHT) / 2, width: SERVICE_WIDTH, height: SERVICE_HEIGHT };
    let mut row_top = y + (height - label_lines.iter().map(|&l| row_height(l)).sum::<i32>()) / 2;
    let versions = label_lines
        .iter()
        .map(|&lines| {
            let row = row_height(lines);
            let version = Rect {
                x: x + SERVICE_WIDTH + LABEL_GAP,
                y: row_top + row - VERSION_HEIGHT - 6,
                width: VERSION_WIDTH,
                height: VERSION_HEIGHT,
            };
            row_top += row;
            version
        })
        .collect();
    Placed { service, versions }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlaps(a: &Rect, b: &Rect) -> bool {
        a.x < b.right() && b.x < a.right() && a.y < b.y + b.height && b.y < a.y + a.height
    }

    #[test]
    fn the_chain_runs_left_to_right() {
        let layout = place(&[vec![0], vec![1], vec![2]], &[], &[vec![1], vec![1], vec![2, 2, 1]]);
        let xs: Vec<i32> = layout.placed.iter().map(|p| p.service.x).collect();
        assert!(xs[0] < xs[1] && xs[1] < xs[2], "{xs:?}");
        let versions = &layout.placed[2].versions;
        // Labels stack upwards from just above a version's middle: two lines of the second
        // version stay below the first version's labels.
        let second_label_top = versions[1].middle() - 5 - LINE_HEIGHT - 10;
        assert!(second_label_top > versions[0].middle(), "room for two label lines");
        assert!(layout.width >= layout.placed[2].versions[0].right() + MARGIN);
        assert!(layout.height >= versions[2].y + versions[2].height);
    }

    #[test]
    fn fifty_unconnected_services_fill_a_grid_without_overlapping() {
        let lines = vec![vec![1, 1]; 50];
        let loose: Vec<usize> = (0..50).collect();
        let layout = place(&[], &loose, &lines);
        assert_eq!(layout.width, column_x(3) - COLUMN_GAP + MARGIN, "three blocks wide: fits a laptop screen");
        let boxes: Vec<Rect> =
            layout.placed.iter().flat_map(|p| std::iter::once(p.service).chain(p.versions.iter().copied())).collect();
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                assert!(!overlaps(a, b), "{a:?} overlaps {b:?}");
            }
            assert!(a.right() <= layout.width && a.y + a.height <= layout.height);
        }
    }

    #[test]
    fn one_service_without_versions_is_one_small_block() {
        let layout = place(&[], &[0], &[vec![]]);
        assert_eq!(layout.width, BLOCK_WIDTH + 2 * MARGIN);
        assert!(layout.height < 80, "{}", layout.height);
    }
}
