// How the host daemon re-reads metadata: every DEFAULT_METADATA_REFRESH_MS, after grants,
// and when a request names an LV it does not know. On a pool of 10,000 LVs a read is the
// whole text (8 MB) from the LUN, checked and parsed: each daemon paid that every 30 s,
// 64 hosts about 17 MB/s of metadata reads on the SAN, though the master commits far less
// often. So a refresh first reads what identifies the text (the PVs' label and header
// sectors, vgTextKey) and stops there when it is the text already read. Without that key
// (the VG's devices unknown, or they cannot say), every refresh reads in full as before.
//
// One read at a time: callers arriving meanwhile share it.

export interface MetadataRefreshSteps<T> {
  /** What identifies the text now; undefined when only a full read can tell. */
  textKey(): Promise<string | undefined>;
  /** The full read. */
  read(): Promise<T>;
  /** Takes a full read in. */
  apply(read: T): Promise<void>;
}

export function metadataRefresher<T>(steps: MetadataRefreshSteps<T>): () => Promise<void> {
  let appliedKey: string | undefined;
  let inFlight: Promise<void> | undefined;
  const refresh = async (): Promise<void> => {
    const key = await steps.textKey();
    if (key !== undefined && key === appliedKey) return;
    // The key is read before the text: a commit between the two makes the next key differ
    // from this one, and the next refresh reads again. Never the other way round.
    const read = await steps.read();
    await steps.apply(read);
    appliedKey = key;
  };
  return () => {
    inFlight ??= refresh().finally(() => (inFlight = undefined));
    return inFlight;
  };
}
