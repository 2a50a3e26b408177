import { describe, expect, test } from 'vitest';
import { metadataRefresher } from '../../src/host/metadataRefresh.js';

/** A refresher over a text whose key and content the test sets; counts the full reads. */
function world(initialKey: string | undefined) {
  const state = { key: initialKey, text: 'v1', reads: 0, applied: [] as string[], failApply: false };
  const refresh = metadataRefresher({
    textKey: async () => state.key,
    read: async () => {
      state.reads += 1;
      return state.text;
    },
    apply: async (text) => {
      if (state.failApply) throw new Error('apply failed');
      state.applied.push(text);
    },
  });
  return { state, refresh };
}

describe('metadataRefresher', () => {
  test('reads in full only when the key says the text changed', async () => {
    const { state, refresh } = world('k1');
    await refresh();
    await refresh();
    expect(state.reads).toBe(1);
    state.key = 'k2';
    state.text = 'v2';
    await refresh();
    await refresh();
    expect(state.reads).toBe(2);
    expect(state.applied).toEqual(['v1', 'v2']);
  });

  test('without a key every refresh reads in full', async () => {
    const { state, refresh } = world(undefined);
    await refresh();
    await refresh();
    expect(state.reads).toBe(2);
  });

  test('a read that was not taken in is read again next time', async () => {
    const { state, refresh } = world('k1');
    state.failApply = true;
    await expect(refresh()).rejects.toThrow('apply failed');
    state.failApply = false;
    await refresh();
    expect(state.reads).toBe(2);
    expect(state.applied).toEqual(['v1']);
  });

  test('callers arriving during a refresh share it', async () => {
    const { state, refresh } = world(undefined);
    await Promise.all([refresh(), refresh(), refresh()]);
    expect(state.reads).toBe(1);
  });
});
