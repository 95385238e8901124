include $(sort $(wildcard $(BR2_EXTERNAL_BABYMON_PATH)/package/*/*.mk))
