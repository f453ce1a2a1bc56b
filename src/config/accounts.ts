// /etc/passwd and /etc/group lookups without native code (local accounts only, no NSS).

import { readFileSync } from 'node:fs';

function readAccounts(file: string): string[][] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('+') && !l.startsWith('-'))
    .map((l) => l.split(':'));
}

export function lookupUser(name: string, passwdFile = '/etc/passwd'): { uid: number; gid: number; home: string } | null {
  for (const f of readAccounts(passwdFile)) {
    if (f[0] === name && f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!)) return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] || '/' };
  }
  return null;
}

export function lookupGroup(name: string, groupFile = '/etc/group'): number | null {
  for (const f of readAccounts(groupFile)) {
    if (f[0] === name && f.length >= 3 && /^\d+$/.test(f[2]!)) return Number(f[2]);
  }
  return null;
}
