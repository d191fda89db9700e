include $(sort $(wildcard $(BR2_EXTERNAL_NEARCAST_PATH)/package/*/*.mk))
