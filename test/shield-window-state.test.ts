/**
 * The Shield window's state machine without a database: rows leave by
 * dropping their second from memory, the future edge is read when it comes
 * close, a recount replaces what its chunks cover and reports only what it
 * changed inside the window, a recount never touches the watched id gaps,
 * and a pause longer than memory holds starts over.
 */
import { describe, expect, it } from 'vitest';
import { emptyStepRead, noSeconds, packSeconds, ShieldWindow, type SecondCounts, type StepPlan, type StepRead } from '../src/sources/shield-window.js';

const T0 = new Date('2026-03-01T00:00:00.000Z');
const sec0 = T0.getTime() / 1000;
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);
/** Counts of one second: ALLOW, BLOCK, CHALLENGE, RATE_LIMITED, NULL, OTHER. */
const row = (second: number, allow: number, block = 0): SecondCounts => ({ second: sec0 + second, counts: [allow, block, 0, 0, 0, 0] });
const zeros = () => [0, 0, 0, 0, 0, 0];

const emptyRead = (plan: StepPlan, more: Partial<StepRead> = {}): StepRead => ({ ...emptyStepRead(plan), ...more });

function newWindow(over: Partial<ConstructorParameters<typeof ShieldWindow>[0]> = {}) {
  return new ShieldWindow({
    windowSeconds: 100,
    horizonSeconds: 10,
    lateCommitMs: 1_000_000,
    maxGaps: 100,
    recountIntervalMs: 1_000_000,
    initialChunkSeconds: 1_000,
    maxChunkSeconds: 1_000,
    ...over,
  });
}

/** Starts the window at `now` and completes its first recount from `truth` (rows per second). */
function started(win: ShieldWindow, now: Date, truth: SecondCounts[], initGaps: StepRead['initGaps'] = []): void {
  const init = win.plan(now, false);
  win.apply(init, emptyRead(init, { maxId: 100n, initGaps }), now);
  expect(win.complete).toBe(false);
  const chunk = win.plan(now, true);
  expect(chunk.chunk).toEqual({ from: sec0 - 100 + (now.getTime() - T0.getTime()) / 1000, to: sec0 + 10 + (now.getTime() - T0.getTime()) / 1000 });
  win.apply(chunk, emptyRead(chunk, { chunk: packSeconds(truth) }), now);
  expect(win.complete).toBe(true);
}

describe('shield window state', () => {
  it('drops rows from memory as their second leaves the window, without reading them', () => {
    const win = newWindow();
    started(win, T0, [row(-90, 3), row(-10, 2, 1), row(5, 7)]);
    // The row at +5 s is in the future: not counted until its second is whole and past.
    expect(win.windowColumns()).toEqual([5, 1, 0, 0, 0, 0]);
    const step = (s: number) => {
      const plan = win.plan(at(s), false);
      win.apply(plan, emptyRead(plan), at(s));
    };
    step(6);
    expect(win.windowColumns()).toEqual([12, 1, 0, 0, 0, 0]);
    step(11); // −90 s is now 101 s old
    expect(win.windowColumns()).toEqual([9, 1, 0, 0, 0, 0]);
    step(91);
    expect(win.windowColumns()).toEqual([7, 0, 0, 0, 0, 0]);
  });

  it('reads the future edge as it comes close and adds new rows only below it', () => {
    const win = newWindow();
    started(win, T0, []);
    const plan = win.plan(at(5), false);
    expect([plan.frontFrom - sec0, plan.frontTo - sec0, plan.addBefore - sec0]).toEqual([10, 15, 10]);
    // A new row at +12 s is read by the edge; the batch's copy of it is not added twice.
    win.apply(plan, emptyRead(plan, { front: packSeconds([row(12, 1)]), added: [packSeconds([row(-3, 2), row(12, 1)])], maxId: 105n }), at(5));
    expect(win.windowColumns()).toEqual([2, 0, 0, 0, 0, 0]);
    const later = win.plan(at(13), false);
    win.apply(later, emptyRead(later), at(13));
    expect(win.windowColumns()).toEqual([3, 0, 0, 0, 0, 0]);
  });

  it('replaces what a recount chunk covers, keeps the watched gaps, and reports drift inside the window only', () => {
    const win = newWindow({ recountIntervalMs: 10_000, maxChunkSeconds: 60 });
    const gaps = [{ from: 90n, to: 95n }];
    const init = win.plan(T0, false);
    win.apply(init, emptyRead(init, { maxId: 100n, initGaps: gaps }), T0);
    const first = win.plan(T0, true);
    win.apply(first, emptyRead(first, { chunk: packSeconds([row(-50, 4)]) }), T0);
    const second = win.plan(T0, true);
    win.apply(second, emptyRead(second, { chunk: packSeconds([row(-20, 6), row(8, 5)]) }), T0);
    expect(win.complete).toBe(true);
    expect(win.drift).toEqual(zeros()); // the first recount's differences are not drift
    // Ten seconds later, a recount finds one row deleted at −50 s, and two at +15 s (still future: not drift).
    const step = win.plan(at(10), false);
    win.apply(step, emptyRead(step), at(10));
    win.startRecountIfDue(at(10));
    const a = win.plan(at(10), true);
    win.apply(a, emptyRead(a, { chunk: packSeconds([row(-50, 3)]) }), at(10));
    const b = win.plan(at(10), true);
    win.apply(b, emptyRead(b, { chunk: packSeconds([row(-20, 6), row(8, 5), row(15, 2)]) }), at(10));
    expect(win.complete).toBe(true);
    expect(win.recountProgress).toBe(1);
    expect(win.drift).toEqual([-1, 0, 0, 0, 0, 0]);
    expect(win.windowColumns()).toEqual([3 + 6 + 5, 0, 0, 0, 0, 0]);
    const later = win.plan(at(16), false);
    win.apply(later, emptyRead(later), at(16));
    expect(win.windowColumns()).toEqual([3 + 6 + 5 + 2, 0, 0, 0, 0, 0]);
    expect(win.watchedGaps.map((g) => [g.from, g.to])).toEqual([[90n, 95n]]);
  });

  it('finishes a recount that the window has outrun, and starts over after a pause longer than memory', () => {
    const win = newWindow({ maxChunkSeconds: 20 });
    const init = win.plan(T0, false);
    win.apply(init, emptyRead(init), T0);
    const chunk = win.plan(T0, true);
    win.apply(chunk, emptyRead(chunk, { chunk: packSeconds([]) }), T0);
    expect(win.recountProgress).toBeCloseTo(20 / 110);
    const step = win.plan(at(50), false);
    win.apply(step, emptyRead(step), at(50));
    expect(win.complete).toBe(false);
    // The window moved past the recount's end: nothing is left to recount.
    const moved = win.plan(at(110), false);
    expect(moved.init).toBe(false);
    win.apply(moved, emptyRead(moved), at(110));
    expect(win.complete).toBe(true);
    // A pause longer than window + horizon: a fresh start, incomplete again.
    const paused = win.plan(at(300), false);
    expect(paused.init).toBe(true);
    win.apply(paused, emptyRead(paused), at(300));
    expect(win.complete).toBe(false);
  });

  it('times a recount from its start to its last chunk: within one collection by the time into it, across collections by the collection clock too', () => {
    // Done within one collection: the main read at 0.2 s into it, the chunk 5.2 s in.
    const one = newWindow();
    const init = one.plan(T0, false);
    one.apply(init, emptyRead(init, { maxId: 100n }), T0, 200);
    expect(one.lastRecountSeconds).toBeNull();
    const chunk = one.plan(T0, true);
    one.apply(chunk, emptyRead(chunk, { chunk: packSeconds([row(-5, 1)]) }), T0, 5_200);
    expect(one.complete).toBe(true);
    expect(one.lastRecountSeconds).toBe(5);

    // Over two collections 15 s apart: chunks of 40 s of the window each.
    const two = newWindow({ initialChunkSeconds: 60, maxChunkSeconds: 60 });
    const start = two.plan(T0, false);
    two.apply(start, emptyRead(start, { maxId: 100n }), T0, 100);
    const first = two.plan(T0, true);
    two.apply(first, emptyRead(first, { chunk: noSeconds() }), T0, 900);
    expect(two.complete).toBe(false);
    const next = two.plan(at(15), false);
    two.apply(next, emptyRead(next), at(15), 100);
    for (let i = 0; !two.complete && i < 5; i++) {
      const more = two.plan(at(15), true);
      two.apply(more, emptyRead(more, { chunk: noSeconds() }), at(15), 600 + i * 100);
    }
    expect(two.complete).toBe(true);
    expect(two.lastRecountSeconds).toBeGreaterThan(15);
    expect(two.lastRecountSeconds).toBeLessThan(16);
  });
});
