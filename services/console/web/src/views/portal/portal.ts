// The customer's own account: the one in their token. The services refuse any other with "not found".
import { computed } from "vue";
import { session } from "../../api/session";

export const accountId = computed(() => session.claims?.account_id ?? "");
export const accountPath = computed(() => `/v1/accounts/${encodeURIComponent(accountId.value)}`);

export const PRESET_AMOUNTS = ["50", "100", "200"];
