// A thin LV as a volume of the xapi-storage (SMAPIv3) Volume API, which `thinlv vdi`
// prints. Pure: the caller reads the LV (src/vdi/readVolumes.ts).
//
//   key                   the LV name: the identifier every other call takes
//   uuid                  the LV's uuid, as LVM keeps it
//   name, description     from the VDI tags (src/vdi/volumeTags.ts); a thin LV made
//                         without `vdi create` is named after its LV, with no description
//   read_write            the LV's permission in metadata (false after lvchange -p r)
//   sharable              always false: one host at a time holds a thin LV (I8)
//   virtual_size          bytes, the thinlv_virtual_bytes tag
//   physical_utilisation  bytes allocated: metadata plus allocations hosts journaled
//                         and the master has not replayed yet
//   uri                   ["block:///dev/VG/LV"], the device an activated LV gets
//   keys                  the key-value pairs, sorted by key

import { readVolumeTags } from './volumeTags.js';

export interface Volume {
  readonly key: string;
  readonly uuid: string;
  readonly name: string;
  readonly description: string;
  readonly read_write: boolean;
  readonly sharable: boolean;
  readonly virtual_size: number;
  readonly physical_utilisation: number;
  readonly uri: readonly string[];
  readonly keys: Readonly<Record<string, string>>;
}

export interface VolumeSource {
  readonly vgName: string;
  readonly lvName: string;
  readonly lvUuid: string;
  readonly tags: readonly string[];
  readonly virtualBytes: number;
  /** Extents in metadata plus unreplayed ones. */
  readonly allocatedExtentCount: number;
  readonly extentSizeBytes: number;
  /** LVM's WRITE status flag of the LV. */
  readonly writable: boolean;
}

export const volumeUri = (vgName: string, lvName: string): string => `block:///dev/${vgName}/${lvName}`;

export function volumeOf(source: VolumeSource): Volume {
  const tags = readVolumeTags(source.lvName, source.tags);
  return {
    key: source.lvName,
    uuid: source.lvUuid,
    name: tags.name ?? source.lvName,
    description: tags.description,
    read_write: source.writable,
    sharable: false,
    virtual_size: source.virtualBytes,
    physical_utilisation: source.allocatedExtentCount * source.extentSizeBytes,
    uri: [volumeUri(source.vgName, source.lvName)],
    // fromEntries defines own properties, so a key such as "__proto__" stays a key.
    keys: Object.fromEntries(tags.keys),
  };
}
