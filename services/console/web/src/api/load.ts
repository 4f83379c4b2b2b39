// A page's data: loading, the answer, or the reason it failed — and a way to load again.
import { ref, shallowRef, type Ref } from "vue";
import { ApiError } from "./client";

export interface Load<T> {
  data: Ref<T | null>;
  error: Ref<string | null>;
  status: Ref<number | null>;
  loading: Ref<boolean>;
  run: () => Promise<void>;
}

export function useLoad<T>(fetcher: () => Promise<T>, immediate = true): Load<T> {
  const data = shallowRef<T | null>(null) as Ref<T | null>;
  const error = ref<string | null>(null);
  const status = ref<number | null>(null);
  const loading = ref(false);
  let generation = 0;

  async function run(): Promise<void> {
    const mine = ++generation; // a slower earlier answer must not overwrite a newer one
    loading.value = true;
    error.value = null;
    status.value = null;
    try {
      const answer = await fetcher();
      if (mine === generation) data.value = answer;
    } catch (exc) {
      if (mine !== generation) return;
      status.value = exc instanceof ApiError ? exc.status : null;
      error.value = exc instanceof Error ? exc.message || String(exc) : String(exc);
    } finally {
      if (mine === generation) loading.value = false;
    }
  }

  if (immediate) void run();
  return { data, error, status, loading, run };
}

// Poll while a page is open (e.g. the command console's live state); stop() when it closes.
export function every(ms: number, tick: () => void): { stop: () => void } {
  const handle = window.setInterval(() => {
    if (document.visibilityState === "visible") tick();
  }, ms);
  return { stop: () => window.clearInterval(handle) };
}
