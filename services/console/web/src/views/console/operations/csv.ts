// Reading the CSV reports back for a preview (the report routes answer CSV or XLSX, no JSON): RFC 4180 quoting,
// a leading byte-order mark (billing writes UTF-8 with BOM for Excel) dropped, at most `limit` data rows kept.
export interface Sheet {
  header: string[];
  rows: string[][];
  more: boolean; // rows beyond the limit were left out
}

export function parseCsv(text: string, limit = 200): Sheet {
  const records: string[][] = [];
  let field = "";
  let record: string[] = [];
  let quoted = false;
  const source = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (quoted) {
      if (c === '"' && source[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      record.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && source[i + 1] === "\n") i++;
      record.push(field);
      records.push(record);
      field = "";
      record = [];
      if (records.length > limit + 1) break;
    } else field += c;
  }
  if (field !== "" || record.length) {
    record.push(field);
    records.push(record);
  }
  const [header = [], ...rows] = records;
  return { header, rows: rows.slice(0, limit), more: rows.length > limit };
}
